import json

import pytest
import torch

import reprolab
from reprolab import gallery
from reprolab.cli import main
from reprolab.gallery import build_gallery, parse_classes
from reprolab.uap import targeted_uap


@pytest.fixture
def grey_images():
    torch.manual_seed(0)
    return (0.5 + 0.05 * torch.randn(32, 3, 32, 32)).clamp(0, 1)


def test_targets_are_reached_within_the_bound(tiny_model, grey_images):
    program, history = targeted_uap(tiny_model, grey_images, [2, 7], eps=0.4, steps=60, batch_size=8,
                                    lr=0.1, progress=False, log_every=20)
    assert program.delta().abs().max() <= 0.4
    rates = reprolab.targeted_success(tiny_model, program, grey_images, [2, 7])
    assert rates["per_class"] == [1.0, 1.0]  # brightness 2/9 and 7/9 are both within 0.4 of 0.5
    assert history.metrics["target_rate"][-1] > history.metrics["target_rate"][0]


def test_a_spectrum_reaches_the_targets_too_and_the_gallery_records_it(tiny_model, grey_images, tmp_path):
    # without views the brightness model's answer depends on the spectrum's constant term alone
    program, _ = targeted_uap(tiny_model, grey_images, [2, 7], eps=0.4, steps=60, batch_size=8, lr=0.2,
                              parametrization="fourier", augment=False, progress=False)
    d = program.delta()
    assert program.parametrization == "fourier" and d.abs().max() <= 0.4
    assert d.std((1, 2, 3)).max() < 1e-3 and d[0].mean() < -0.2 < 0.2 < d[1].mean()  # a flat shift each way
    assert reprolab.targeted_success(tiny_model, program, grey_images, [2, 7])["per_class"] == [1.0, 1.0]
    out = tmp_path / "g"
    build_gallery(tiny_model, grey_images, [2], out, eps=0.4, steps=2, heldout=grey_images[:4], progress=False,
                  parametrization="fourier")
    assert json.loads((out / "index.json").read_text())["settings"]["parametrization"] == "fourier"
    with pytest.raises(ValueError, match="parametrization 'fourier' there, 'tanh' now"):
        build_gallery(tiny_model, grey_images, [7], out, eps=0.4, steps=2, progress=False)


def test_cpu_default_of_one_photo_per_pass_gives_the_same_program(tiny_model, grey_images):
    kw = dict(eps=0.4, steps=3, batch_size=4, augment=False, progress=False)  # no views: deterministic
    default, _ = targeted_uap(tiny_model, grey_images, [2, 7], **kw)  # micro_batch=1 on CPU
    whole, _ = targeted_uap(tiny_model, grey_images, [2, 7], micro_batch=None, **kw)
    assert torch.allclose(default.delta(), whole.delta(), atol=1e-5)
    assert not torch.allclose(default.delta(), torch.zeros_like(default.delta()))


def test_gradient_flows_through_the_augmentations(tiny_model, grey_images):
    program = reprolab.AdditivePerturbation(32, eps=0.1, n=3)
    objective = reprolab.Targeted([1, 2, 3], views=reprolab.uap.gallery_views(blur=1.0))
    loss, _ = objective(tiny_model, program, grey_images[:4], None)
    loss.backward()
    assert program.w.grad is not None and program.w.grad.abs().sum() > 0
    assert program.w.grad[0].abs().sum() > 0 and program.w.grad[2].abs().sum() > 0


def test_gallery_resumes_without_redoing_classes(tiny_model, grey_images, tmp_path, monkeypatch):
    calls = []
    real = reprolab.uap.targeted_uap

    def counting(model, x, targets, *a, **k):
        calls.append(list(targets))
        if len(calls) == 2 and not resumed:
            raise KeyboardInterrupt  # stopped in the middle of the second run
        return real(model, x, targets, *a, **k)

    monkeypatch.setattr(gallery, "targeted_uap", counting)
    out = tmp_path / "gallery"
    resumed = False
    with pytest.raises(KeyboardInterrupt):
        build_gallery(tiny_model, grey_images, [2, 7, 4], out, eps=0.4, steps=5, classes_per_run=2,
                      heldout=grey_images[:8], progress=False)
    index = json.loads((out / "index.json").read_text())
    assert set(index["classes"]) == {"2", "7"}
    assert not list(out.glob(".*.tmp"))  # nothing half-written left behind
    resumed = True
    index = build_gallery(tiny_model, grey_images, [2, 7, 4], out, eps=0.4, steps=5, classes_per_run=2,
                          heldout=grey_images[:8], progress=False)
    assert calls == [[2, 7], [4], [4]]  # the finished classes were not crafted again
    assert set(index["classes"]) == {"2", "7", "4"}
    for entry in index["classes"].values():
        assert (out / entry["png"]).stat().st_size > 0 and 0 <= entry["target_success"] <= 1
    ids, program, _ = gallery.load_gallery(out)
    assert ids == [2, 4, 7] and program.w.shape[0] == 3
    with pytest.raises(ValueError, match="another --out folder"):
        build_gallery(tiny_model, grey_images, [1], out, eps=0.2, steps=5, progress=False)


def test_class_parsing_and_clear_errors(tiny_model, tmp_path):
    names = reprolab.imagenet_class_names()
    assert parse_classes("33, toucan,Leopard", names) == [33, 96, 288]
    assert parse_classes("all", names) == list(range(1000))
    listing = tmp_path / "classes.txt"
    listing.write_text("monitor\n978\n")
    assert parse_classes(str(listing), names) == [664, 978]
    with pytest.raises(ValueError, match="did you mean toucan"):
        parse_classes("toucann", names)
    with pytest.raises(ValueError, match="out of range"):
        parse_classes("1000", names)
    with pytest.raises(ValueError, match="eps must be in"):
        targeted_uap(tiny_model, torch.rand(4, 3, 32, 32), [1], eps=1.5, steps=1, progress=False)
    with pytest.raises(ValueError, match="not in"):
        targeted_uap(tiny_model, torch.rand(4, 3, 32, 32), [10], steps=1, progress=False)


def test_gallery_cli_and_evaluate(tmp_path, capsys, data_dir):
    out = tmp_path / "g"
    argv = ["gallery", "--classes", "toucan,tick", "--steps", "2", "--batch-size", "2", "--out", str(out), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["classes"] == 2 and 0 <= result["mean_target_success"] <= 1
    assert main(["evaluate", str(out), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in ev["per_class"]] == [78, 96] and ev["n"] == 250
    assert main(["gallery", "--classes", "tucan", "--out", str(out)]) == 2
    assert "did you mean toucan" in capsys.readouterr().err
