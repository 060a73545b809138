"""Widget callbacks are plain functions: call them and check what they render."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

import reprolab
from reprolab import widgets
from reprolab.programs import ReprogrammingFrame


def _uap(eps=0.2):
    p = reprolab.AdditivePerturbation(32, eps=eps, parametrization="projected")
    with torch.no_grad():
        p.w.fill_(eps)  # brighter by eps: the brightness model's class goes up
    return p


def test_uap_scale_view_rescales_and_reports(tiny_model):
    x, y = torch.full((6, 3, 32, 32), 0.3), torch.full((6,), 3)
    fig, m = widgets.uap_scale_view(tiny_model, _uap(), x, y, eps=0.2, n_show=3)
    assert len(fig.axes) == 4 and "delta, eps=51.0/255" in fig.axes[0].get_title()
    assert m["eps"] == 0.2 and m["fooling_rate"] == 1.0  # 0.3 + 0.2 = 0.5: class 3 -> 4 or 5
    _, small = widgets.uap_scale_view(tiny_model, _uap(), x, y, eps=0.01)
    assert small["fooling_rate"] == 0.0  # 0.31 is still class 3


@pytest.fixture
def live(monkeypatch):
    monkeypatch.setenv("REPROLAB_STATIC", "0")


def test_static_builds_get_a_note_not_a_widget(tiny_model, capsys):
    x, y = torch.full((4, 3, 32, 32), 0.3), torch.full((4,), 3)
    assert widgets.uap_explorer(tiny_model, _uap(), x, y) is None
    assert "live kernel" in capsys.readouterr().out


def test_uap_explorer_slider_redraws(tiny_model, live):
    x, y = torch.full((4, 3, 32, 32), 0.3), torch.full((4,), 3)
    box = widgets.uap_explorer(tiny_model, _uap(), x, y, max_eps=0.3)
    slider, out = box.children
    before = len(out.outputs)
    slider.value = 2.0
    assert slider.description == "eps x 255" and len(out.outputs) >= before >= 0


def test_reprogram_view_shows_mapped_prediction(tiny_model, live):
    program = ReprogrammingFrame(32, 32, n_task=10)  # identity mapping, no frame
    x = (torch.arange(10).float() / 9).view(-1, 1, 1, 1).expand(-1, 1, 8, 8).clone()
    y = torch.arange(10)
    fig, info = widgets.reprogram_view(tiny_model, program, x, y, index=7, k=3)
    assert info["label"] == 7 and info["prediction"] == 7
    assert info["top"][0][0] == "class_7" and len(info["top"]) == 3
    assert "predicted 7" in fig.axes[0].get_title()
    box = widgets.reprogram_explorer(tiny_model, program, x, y)
    box.children[0].value = 3


def test_datafree_view_crafts_and_reports(tiny_model, live):
    x, y = torch.full((6, 3, 32, 32), 0.3), torch.full((6,), 3)
    fig, m = widgets.datafree_view(tiny_model, "range", ["0"], x, y, steps=20, eps=0.2)
    assert m["prior"] == "range" and m["layers"] == 1 and m["fooling_rate"] == 1.0
    assert "range prior" in fig._suptitle.get_text()
    box = widgets.datafree_explorer(tiny_model, x, y, craft=x, steps=2)
    prior, span, button, out = box.children
    prior.value = "data"
    button.click()
    assert span.value == (0, 0)


def test_gallery_view_and_browser(tiny_model, live, tmp_path):
    from reprolab.gallery import build_gallery

    x = torch.full((8, 3, 32, 32), 0.5)
    build_gallery(tiny_model, x, [2, 7], tmp_path, eps=0.4, steps=30, heldout=x, progress=False, lr=0.1)
    ids, program, index = reprolab.gallery.load_gallery(tmp_path)
    fig, info = widgets.gallery_view(tiny_model, program.select(1), 7, x, n_show=2, k=3)
    assert info["target_success"] == 1.0 and info["top"][0]["changed"][0] == "class_7"
    assert len(info["top"][0]["clean"]) == 3
    box = widgets.gallery_browser(tiny_model, tmp_path, x)
    search, grid, out = box.children
    assert len(grid.children) == 2
    search.value = "class_7"
    assert len(grid.children) == 1
    fig = reprolab.plots.gallery_grid(tmp_path)
    assert "class_2" in fig.axes[0].get_title()


def test_zoo_gallery_browser_finds_a_class_by_name_and_shows_its_picture(live):
    from reprolab import zoo

    name = "gallery-efficientnet_lite0"
    box = widgets.zoo_gallery_browser(name)
    search, (big, caption), grid = box.children[0], box.children[1].children, box.children[2]
    assert len(grid.children) == min(60, len(zoo.info(name)["per_class"]))
    search.value = "toucan"
    assert len(grid.children) == 1
    assert big.value == zoo.pictures(name)[96].read_bytes() and "toucan" in caption.value
    assert "held-out target success" in caption.value


def test_zoo_gallery_is_a_page_of_cards_in_a_static_build_and_the_browser_live(monkeypatch):
    from reprolab import zoo

    name = "gallery-mobilenet_v2"
    monkeypatch.setenv("REPROLAB_STATIC", "1")
    page = widgets.zoo_gallery(name, static_root="/site/zoo")
    info = zoo.info(name)
    assert page.n_cards == info["metrics"]["classes"] == len(zoo.pictures(name))
    assert 'src="/site/zoo/gallery-mobilenet_v2/class_0096.jpg"' in page.html
    assert f"mobilenet_v2: {info['metrics']['classes']} of 1000 classes" in page.html
    monkeypatch.setenv("REPROLAB_STATIC", "0")
    assert len(widgets.zoo_gallery(name).children) == 3    # search, picture and caption, grid
