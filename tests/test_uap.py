import pytest
import torch

import reprolab
from reprolab import uap
from reprolab.cli import main


@pytest.fixture
def images():
    torch.manual_seed(0)
    # brightness spread over [0.25, 0.75]: the tiny model's class is round(9 * brightness)
    return (torch.rand(48, 1, 1, 1) * 0.5 + 0.25 + torch.rand(48, 3, 32, 32) * 0.1 - 0.05).clamp(0, 1)


@pytest.mark.parametrize("norm, eps", [("inf", 0.1), ("2", 5.0)])
def test_sgd_uap_respects_norm_and_range_exactly(tiny_model, images, norm, eps):
    program, history = uap.sgd_uap(tiny_model, images, eps=eps, norm=norm, steps=30, batch_size=16,
                                   progress=False)
    d = program.delta()
    assert (d.abs().max() if norm == "inf" else d.norm()) <= eps * (1 + 1e-5)
    out = program(images)
    assert out.min() >= 0 and out.max() <= 1
    # a shift of 0.1 in brightness crosses a class boundary (1/9 apart) for most images
    assert history.metrics["fooling_rate"][-1] > 0.5 > history.metrics["fooling_rate"][0] - 0.3


def test_deepfool_finds_a_small_change_that_flips_each_prediction(tiny_model, images):
    x = images[:8]
    r = uap.deepfool(tiny_model, x, num_classes=3, overshoot=0.02)
    clean = reprolab.predict(tiny_model, x)
    assert (reprolab.predict(tiny_model, (x + r).clamp(0, 1)) != clean).all()
    # minimal: the brightness model's boundaries are 1/18 apart in mean pixel value
    assert r.mean((1, 2, 3)).abs().max() < 1 / 9


def test_deepfool_uap_stops_at_target_and_respects_bound(tiny_model, images):
    program, history = uap.deepfool_uap(tiny_model, images, eps=0.1, target_fooling=0.6, max_passes=3,
                                        num_classes=3, progress=False)
    assert program.delta().abs().max() <= 0.1 + 1e-7
    assert history.metrics["fooling_rate"][-1] >= 0.6
    assert len(history.steps) <= 3


def test_deepfool_uap_stops_when_the_fooling_rate_stops_rising(tiny_model, images):
    # a bound too small to flip anything: the rate is flat, so the second pass is the last
    kw = dict(eps=1e-4, target_fooling=0.99, max_passes=5, num_classes=3, progress=False)
    _, history = uap.deepfool_uap(tiny_model, images, **kw)
    assert len(history.steps) == 2
    _, history = uap.deepfool_uap(tiny_model, images, min_gain=None, **kw)
    assert len(history.steps) == 5


def test_deepfool_uap_on_random_views_respects_the_bound(tiny_model, images):
    program, history = uap.deepfool_uap(tiny_model, images, eps=0.1, max_passes=2, num_classes=3,
                                        augment=True, progress=False)
    assert program.delta().abs().max() <= 0.1 + 1e-7
    assert 0 < len(history.steps) <= 2


def test_labels_are_never_read(tiny_model, images, monkeypatch):
    """Crafting sees only images: the targets are the model's own clean predictions."""
    seen = []
    real = reprolab.TensorBatches.__init__

    def spy(self, x, y, *a, **kw):
        seen.append(y.clone())
        real(self, x, y, *a, **kw)

    monkeypatch.setattr(reprolab.TensorBatches, "__init__", spy)
    uap.sgd_uap(tiny_model, images, steps=1, progress=False)
    assert torch.equal(seen[0], reprolab.predict(tiny_model, images))


@pytest.mark.parametrize("argv, match", [
    (["uap", "--eps", "0", "--out", "x.safetensors"], "eps must be > 0"),
    (["uap", "--eps", "ten", "--out", "x.safetensors"], "fraction like 10/255"),
    (["uap", "--norm", "1", "--out", "x.safetensors"], "invalid choice: '1'"),
])
def test_cli_rejects_bad_eps_and_norm(capsys, argv, match):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and match in capsys.readouterr().err


def test_cli_empty_image_folder(capsys, tmp_path):
    assert main(["uap", "--images", str(tmp_path), "--out", str(tmp_path / "v.safetensors")]) == 2
    assert "no images in" in capsys.readouterr().err
