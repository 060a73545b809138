import matplotlib

matplotlib.use("Agg")

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
    names = reprolab.imagenet_class_names()
    page = plots.gallery_page(program, [96, 664, 207], names,
                              [{"id": 96, "target_success": 0.9}, {"id": 664, "target_success": 0.5}])
    assert page.n_cards == 3 and page.html.count("<figure") == 3
    assert 'data-group="birds"' in page.html and 'data-group="dogs"' in page.html
    assert "held-out success 90%" in page.html and "not measured" in page.html  # 207 has no rate
    page.save(tmp_path / "g.html")
    assert (tmp_path / "g.html").read_text().startswith("<!doctype html>")
    # the groups cover every class once
    covered = [c for lo, hi, _ in IMAGENET_GROUPS for c in range(lo, hi + 1)]
    assert covered == list(range(1000)) and imagenet_group(151) == "dogs"
