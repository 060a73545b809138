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
