import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from reprolab import History, plots


def test_transfer_heat_map_annotates_every_cell():
    fig = plots.plot_transfer(["efficientnet_lite0", "b"], ["efficientnet_lite0", "b", "c"],
                              torch.tensor([[0.9, 0.2, 0.1], [0.3, 0.8, 0.05]]))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["90%", "20%", "10%", "30%", "80%", "5%"]
    assert fig.axes[0].get_xticklabels()[0].get_text() == "lite0"


def test_layer_growth_subtracts_the_baseline():
    h = History()
    for step, (a, b) in enumerate([(1.0, 2.0), (3.0, 5.0)], start=1):
        h.log(step, {"log_act.x": a, "log_act.y": b})
    fig = plots.plot_layer_growth(h, ["x", "y"], baseline=[1.0, 2.0])
    lines = fig.axes[0].get_lines()
    assert list(lines[0].get_ydata()) == [0.0, 2.0] and list(lines[1].get_ydata()) == [0.0, 3.0]


def test_gallery_page_has_a_card_per_class_and_saves_as_one_file(tmp_path):
    import reprolab
    from reprolab.models import IMAGENET_GROUPS, imagenet_group

    program = reprolab.AdditivePerturbation(32, eps=0.25, n=3)
    torch.nn.init.normal_(program.w)
    names = reprolab.imagenet_class_names()
    pictures = plots.inline_pictures(program, [96, 664, 207])
    assert all(src.startswith("data:image/jpeg;base64,") for src in pictures.values())
    page = plots.gallery_page(pictures, names,
                              [{"id": 96, "target_success": 0.9}, {"id": 664, "target_success": 0.5}])
    assert page.n_cards == 3 and page.html.count("<figure") == 3
    assert 'data-group="birds"' in page.html and 'data-group="dogs"' in page.html
    assert "held-out success 90.0%" in page.html and "not measured" in page.html  # 207 has no rate
    page.save(tmp_path / "g.html")
    assert (tmp_path / "g.html").read_text().startswith("<!doctype html>")
    # the groups cover every class once
    covered = [c for lo, hi, _ in IMAGENET_GROUPS for c in range(lo, hi + 1)]
    assert covered == list(range(1000)) and imagenet_group(151) == "dogs"


def test_a_gallery_page_can_point_at_picture_files():
    import reprolab

    page = plots.gallery_page({33: "../_static/zoo/g/class_0033.jpg"}, reprolab.imagenet_class_names())
    assert 'src="../_static/zoo/g/class_0033.jpg"' in page.html and "loggerhead" in page.html


def test_change_picture_is_the_amplified_change_as_a_jpeg():
    import io

    from PIL import Image

    delta = torch.zeros(3, 16, 16)
    delta[:, :, :8] = 0.1  # left half brighter, right half no change
    img = Image.open(io.BytesIO(plots.change_picture(delta, quality=95)))
    assert img.format == "JPEG" and img.size == (16, 16)
    pixels = torch.tensor(list(img.getdata()), dtype=torch.float32).view(16, 16, 3)
    assert pixels[:, :6].mean() > 240 and abs(pixels[:, 10:].mean() - 128) < 6  # +max -> white, 0 -> grey


def test_picture_grid_titles_each_picture_and_puts_a_photo_beside_it(tmp_path):
    import reprolab

    files = {}
    for c in (33, 96):
        files[c] = tmp_path / f"class_{c:04d}.jpg"
        files[c].write_bytes(plots.change_picture(torch.randn(3, 8, 8)))
    fig = plots.picture_grid(files, [33, 96], reprolab.imagenet_class_names(), rates={33: 0.9},
                             photos={96: torch.rand(3, 8, 8)})
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["loggerhead (#33) 90%", "toucan (#96)", "a photo of toucan"]


def test_compare_pictures_puts_each_gallery_in_a_row_under_its_classes(tmp_path):
    import reprolab

    galleries = {}
    for label in ("a", "b"):
        galleries[label] = {}
        for c in (33, 96, 664):
            galleries[label][c] = tmp_path / f"{label}_{c}.jpg"
            galleries[label][c].write_bytes(plots.change_picture(torch.randn(3, 8, 8)))
    fig = plots.compare_pictures(galleries, [33, 96, 664], reprolab.imagenet_class_names(),
                                 rates={"b": {96: 0.5}}, ncols=2)
    titles = [ax.get_title() for ax in fig.axes]
    # two blocks of two classes, each block a row for "a" then a row for "b"
    assert titles == ["loggerhead, a", "toucan, a", "loggerhead, b", "toucan, b 50%",
                      "monitor, a", "", "monitor, b", ""]
    del galleries["b"][664]
    with pytest.raises(ValueError, match=r"'b': \[664\]"):
        plots.compare_pictures(galleries, [33, 664], reprolab.imagenet_class_names())
