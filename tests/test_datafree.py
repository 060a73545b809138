import json

import pytest
import torch
from torch import nn

import reprolab
from reprolab.cli import main
from reprolab.datafree import GaussianImages, activation_energy, datafree_uap, prior_batches


def _hooks(model):
    return sum(len(m._forward_hooks) for m in model.net.modules())


@pytest.mark.parametrize("prior", ["none", "range", "data"])
def test_each_prior_raises_activations_within_the_bound_and_leaves_no_hooks(tiny_model, prior):
    x = torch.rand(16, 3, 32, 32) * 0.5 if prior == "data" else None
    program, history = datafree_uap(tiny_model, prior, x, eps=0.1, steps=20, batch_size=4, progress=False,
                                    log_every=5)
    assert program.delta().abs().max() <= 0.1 + 1e-7
    act = history.metrics["log_act.0"]  # the tiny model's one conv layer, found automatically
    assert act[-1] > act[0]
    assert _hooks(tiny_model) == 0  # the recording hooks are gone, call after call
    datafree_uap(tiny_model, prior, x, eps=0.1, steps=2, progress=False)
    assert _hooks(tiny_model) == 0


def test_jitter_shows_the_network_a_batch_of_views_of_mean_plus_delta(tiny_model):
    seen = []
    handle = tiny_model.net.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    try:
        program, history = datafree_uap(tiny_model, "none", eps=0.1, steps=10, batch_size=3, jitter=0.3,
                                        progress=False, log_every=5)
    finally:
        handle.remove()
    assert seen[0].shape == (3, 3, 32, 32)  # three copies of the mean image, each viewed differently
    assert not torch.equal(seen[0][0], seen[0][1])
    act = history.metrics["log_act.0"]
    assert act[-1] > act[0] and program.delta().abs().max() <= 0.1 + 1e-7
    with pytest.raises(ValueError, match="jitter"):
        datafree_uap(tiny_model, "none", steps=1, jitter=0, progress=False)


def test_hooks_are_removed_after_an_error(tiny_model):
    with pytest.raises(RuntimeError):
        with tiny_model.record(["0"]):
            raise RuntimeError("boom")
    assert _hooks(tiny_model) == 0


def test_block_layers_of_efficientnet_lite(lite0):
    assert lite0.block_layers() == [f"_blocks.{i}" for i in range(16)]


def test_range_prior_resamples_every_step_from_the_seeded_rng():
    batches = GaussianImages(32, 4, "cpu")
    torch.manual_seed(1)
    a, y = batches(0)
    torch.manual_seed(1)
    b, _ = batches(0)
    assert y is None and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1
    assert not torch.equal(a, batches(1)[0])


def test_no_label_reaches_the_objective(tiny_model):
    seen = []
    batches = prior_batches(tiny_model, "data", 32, 4, torch.rand(8, 3, 32, 32))
    for step in range(3):
        seen.append(batches(step)[1])
    assert seen == [None, None, None]


def test_validation_early_stopping_keeps_the_best(tiny_model):
    val = torch.rand(16, 3, 32, 32) * 0.3 + 0.35
    program, history = datafree_uap(tiny_model, "none", eps=0.2, steps=20, progress=False, val=val,
                                    check_every=5, log_every=5)
    rates = [r for r in history.metrics["val_fooling_rate"] if r == r]
    clean = reprolab.predict(tiny_model, val)
    final = reprolab.fooling_rate(clean, reprolab.predict(tiny_model, val, program))
    assert final == pytest.approx(max(rates))


def test_halving_validates_first_so_the_saturated_perturbation_is_the_candidate(tiny_model):
    # one check, at the end, with a threshold that always fires: the check halves the perturbation
    kw = dict(eps=0.2, steps=10, check_every=10, halve_at=1e-3, progress=False)
    halved, _ = datafree_uap(tiny_model, "none", **kw)
    assert halved.delta().abs().max() <= 0.1 + 1e-7  # no val: what is returned is the halved one
    kept, history = datafree_uap(tiny_model, "none", val=torch.rand(8, 3, 32, 32), **kw)
    assert history.metrics["saturation"][-1] >= 1e-3
    assert reprolab.datafree.saturation(kept) == pytest.approx(history.metrics["saturation"][-1])


def test_clear_errors(tiny_model):
    flat = reprolab.wrap_model(nn.Sequential(nn.Flatten(), nn.LazyLinear(10)), input_size=32)
    with pytest.raises(ValueError, match="no convolutional layers"):
        datafree_uap(flat, "none", steps=1, progress=False)
    with pytest.raises(ValueError, match="no layers to maximise"):
        datafree_uap(tiny_model, "none", steps=1, layers=[], progress=False)
    with pytest.raises(ValueError, match="unknown prior"):
        datafree_uap(tiny_model, "imagenet", steps=1, progress=False)
    with pytest.raises(ValueError, match="needs images"):
        datafree_uap(tiny_model, "data", steps=1, progress=False)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        datafree_uap(tiny_model, "none", steps=1, layers=["nope"], progress=False)
    with pytest.raises(ValueError, match="eps must be"):
        datafree_uap(tiny_model, "none", eps=0, steps=1, progress=False)


def test_no_data_beats_noise_on_lite0(lite0):
    """A short no-data run already fools far more held-out photos than noise of the same bound."""
    x, _ = reprolab.data.load_images(None, 224, split="heldout", crop=lite0.crop)
    x = x[:48]
    program, _ = datafree_uap(lite0, "none", eps=10 / 255, steps=40, progress=False)
    clean = reprolab.predict(lite0, x)
    uap = reprolab.fooling_rate(clean, reprolab.predict(lite0, x, program))
    noise = reprolab.AdditivePerturbation(224, 10 / 255, parametrization="projected")
    with torch.no_grad():
        noise.w.copy_((torch.randint(0, 2, noise.w.shape) * 2 - 1) * 10 / 255)
    rnd = reprolab.fooling_rate(clean, reprolab.predict(lite0, x, noise))
    print(f"no-data GD-UAP {uap:.1%} vs noise {rnd:.1%}")
    assert uap > rnd + 0.2
    energy = activation_energy(lite0, lite0.block_layers(), x[:8], program)
    assert (energy > activation_energy(lite0, lite0.block_layers(), x[:8])).float().mean() > 0.5


def test_cli_data_prior_on_unlabelled_photos(tmp_path, capsys, data_dir):
    from PIL import Image

    folder = tmp_path / "photos"  # no labels.csv: the data prior must not need labels
    folder.mkdir()
    for i, src in enumerate(sorted((data_dir / "imagenet-sample").glob("*.JPEG"))[:6]):
        Image.open(src).save(folder / f"{i}.png")
    out = tmp_path / "gd.safetensors"
    assert main(["datafree", "--prior", "data", "--images", str(folder), "--steps", "2", "--batch-size", "2",
                 "--schedule", "cosine", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["heldout"]["n"] == 3 and "error_rate" not in result["heldout"]
    assert result["schedule"] == "cosine" and reprolab.load_program(out)[1]["schedule"] == "cosine"
    assert main(["evaluate", str(out), "--images", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3
