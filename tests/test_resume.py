"""Resuming long runs: fit's checkpoints refuse other settings, the CLI resumes a killed run,
and a gallery folder refuses other settings, a second writer, and keeps no half-written files."""

from __future__ import annotations

import json
import socket
import subprocess
import warnings

import pytest
import torch

import reprolab
from helpers import make_tiny_model
from reprolab import AdditivePerturbation, TensorBatches, Targeted, Untargeted, cli, fit, gallery
from reprolab.gallery import GalleryBusy, build_gallery
from reprolab.programs import load_program
from reprolab.reprogramming import reprogram


class Killed(Exception):
    """Stands for a kill: not one of the CLI's expected errors, so it goes straight through."""


def kill_at(step_to_die: int):
    def callback(step, program):
        if step == step_to_die:
            raise Killed
        return {}
    return callback


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(48, 3, 32, 32, generator=g), torch.randint(0, 10, (48,), generator=g)


def _batches(seed=0):
    x, y = _data(seed)
    return TensorBatches(x, y, batch_size=8, seed=1, transform=reprolab.augment.RandomViews())


# --------------------------------------------------------------------------- fit


def _killed_run(tiny_model, ckpt, objective, steps=20, at=15, log_every=5, **kw):
    with pytest.raises(Killed):  # dies after the step-10 checkpoint
        fit(AdditivePerturbation(32, eps=0.3), tiny_model, objective, _batches(), steps=steps, log_every=log_every,
            checkpoint=ckpt, checkpoint_every=10, progress=False, callback=kill_at(at), callback_every=1, **kw)
    assert ckpt.exists()


@pytest.mark.parametrize("log_every", [5, 7], ids=["logs-at-checkpoints", "logs-between-checkpoints"])
@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_fit_resumes_bit_identically_with_random_views(tiny_model, tmp_path, schedule, log_every):
    full = AdditivePerturbation(32, eps=0.3)
    h_full = fit(full, tiny_model, Untargeted(), _batches(), steps=20, log_every=log_every, progress=False,
                 schedule=schedule)
    ckpt = tmp_path / "run.safetensors"
    _killed_run(tiny_model, ckpt, Untargeted(), schedule=schedule, log_every=log_every)
    resumed = AdditivePerturbation(32, eps=0.3)  # a fresh process: new program, same data
    h = fit(resumed, tiny_model, Untargeted(), _batches(), steps=20, log_every=log_every, checkpoint=ckpt,
            checkpoint_every=10, progress=False, schedule=schedule)
    assert torch.equal(resumed.w, full.w)
    # the steps since the last log before the checkpoint are in it: the next log averages them all
    assert h.steps == h_full.steps and h.metrics == h_full.metrics


@pytest.mark.parametrize("change, match", [
    ({"objective": Untargeted("margin")}, r"objective: \"Untargeted\(loss='clamped_ce'"),
    ({"objective": Targeted(3)}, "objective: .*Targeted"),
    ({"steps": 12}, r"steps: 20 in the checkpoint, 12 now \(fewer"),
    ({"steps": 30, "schedule": "cosine"}, "steps: 20 in the checkpoint, 30 now"),
    ({"lr": 0.01}, "lr: 0.05 in the checkpoint, 0.01 now"),
    ({"seed": 3}, "seed: 0 in the checkpoint, 3 now"),
    ({"batches": _batches(seed=1)}, "batches: .*sha256"),
    ({"eps": 0.2}, "program: .*0.3.*0.2"),
    ({"settings": {"command": "other"}}, "command: '\\(not recorded\\)' in the checkpoint, 'other' now"),
], ids=["loss", "objective", "fewer-steps", "cosine-steps", "lr", "seed", "data", "eps", "extra-settings"])
def test_fit_refuses_a_checkpoint_made_with_other_settings(tiny_model, tmp_path, change, match):
    ckpt = tmp_path / "run.safetensors"
    schedule = change.get("schedule", "constant")
    _killed_run(tiny_model, ckpt, Untargeted(), schedule=schedule)
    before = ckpt.read_bytes()
    kw = {"objective": Untargeted(), "steps": 20, "lr": 0.05, "seed": 0, "batches": _batches(), "eps": 0.3,
          "schedule": schedule, **change}
    program = AdditivePerturbation(32, eps=kw.pop("eps"))
    with pytest.raises(ValueError, match=match) as e:
        fit(program, tiny_model, checkpoint=ckpt, progress=False, **kw)
    assert "delete it to start over" in str(e.value) and str(ckpt) in str(e.value)
    assert ckpt.read_bytes() == before  # left as it was, for the run that made it
    assert torch.equal(program.w, torch.zeros_like(program.w))  # nothing was loaded


def test_fit_goes_on_to_more_steps_with_a_constant_rate(tiny_model, tmp_path):
    full = AdditivePerturbation(32, eps=0.3)
    fit(full, tiny_model, Untargeted(), _batches(), steps=30, progress=False)
    ckpt = tmp_path / "run.safetensors"
    fit(AdditivePerturbation(32, eps=0.3), tiny_model, Untargeted(), _batches(), steps=20, checkpoint=ckpt,
        progress=False)
    more = AdditivePerturbation(32, eps=0.3)
    fit(more, tiny_model, Untargeted(), _batches(), steps=30, checkpoint=ckpt, progress=False)
    assert torch.equal(more.w, full.w)


def test_a_checkpoint_without_settings_is_resumed_with_a_warning(tiny_model, tmp_path):
    from reprolab.artifacts import load_artifact, save_artifact

    ckpt = tmp_path / "old.safetensors"
    _killed_run(tiny_model, ckpt, Untargeted())
    tensors, meta = load_artifact(ckpt)
    del meta["settings"]  # as an older reprolab wrote them
    save_artifact(ckpt, tensors, meta)
    with pytest.warns(UserWarning, match="records no settings"):
        h = fit(AdditivePerturbation(32, eps=0.3), tiny_model, Untargeted(), _batches(), steps=20, log_every=5,
                checkpoint=ckpt, progress=False)
    assert h.steps == [5, 10, 15, 20]


def test_iterative_reprogramming_resumes_bit_identically(tiny_model, tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(24, 1, 12, 12, generator=g), torch.randint(0, 3, (24,), generator=g)
    kw = dict(n_task=3, mapping="iterative", steps=12, batch_size=8, size=32, image_size=12, progress=False,
              log_every=3)
    full, _ = reprogram(tiny_model, x, y, **kw)
    ckpt = tmp_path / "r.safetensors"
    with pytest.raises(Killed):
        reprogram(tiny_model, x, y, checkpoint=ckpt, checkpoint_every=4, callback=kill_at(9), **kw)
    resumed, _ = reprogram(tiny_model, x, y, checkpoint=ckpt, checkpoint_every=4, **kw)
    assert torch.equal(resumed.w, full.w) and torch.equal(resumed.label_map, full.label_map)


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def tiny_cli(monkeypatch):
    """The CLI on the tiny model and random photos (no real model, no JPEG decoding)."""
    monkeypatch.setattr(cli, "_load_model", lambda name, args: make_tiny_model())
    x, y = _data()
    monkeypatch.setattr(cli, "_images_for", lambda model, args, split: (x[:32], y[:32]) if split != "heldout"
                        else (x[32:], y[32:]))
    monkeypatch.setattr(cli, "CHECKPOINT_EVERY", 5)


def _kill_at_step(monkeypatch, step):
    """Kill the run as it starts step ``step`` (0-based), whatever its callbacks."""
    real, calls = reprolab.train._forward_backward, []

    def counting(*a, **k):
        calls.append(1)
        if len(calls) == step + 1:
            raise Killed
        return real(*a, **k)

    monkeypatch.setattr(reprolab.train, "_forward_backward", counting)


@pytest.mark.parametrize("command", [
    ["uap", "--steps", "12", "--batch-size", "8", "--eps", "0.1"],
    ["datafree", "--prior", "data", "--layers", "conv", "--steps", "12", "--batch-size", "4", "--eps", "0.1"],
], ids=["uap", "datafree"])
def test_cli_resumes_a_killed_run_and_removes_its_checkpoint(tiny_cli, tmp_path, monkeypatch, capsys, command):
    whole, out = tmp_path / "whole.safetensors", tmp_path / "out.safetensors"
    ckpt = cli.checkpoint_path(out)
    assert cli.main([*command, "--out", str(whole), "--json"]) == 0
    assert not cli.checkpoint_path(whole).exists()  # removed once the artifact is written

    with monkeypatch.context() as m:
        _kill_at_step(m, 7)  # after the step-5 checkpoint, with two steps since the last log
        with pytest.raises(Killed):
            cli.main([*command, "--out", str(out), "--json"])
    assert ckpt.exists() and not out.exists()

    changed = [a if a != "12" else "20" for a in command]  # another --steps
    assert cli.main([*changed, "--out", str(out), "--json"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume it" in err and "--steps: 12 in the checkpoint, 20 now" in err and str(ckpt) in err
    assert ckpt.exists()

    assert cli.main([*command, "--out", str(out)]) == 0
    assert f"resuming from {ckpt}" in capsys.readouterr().err
    assert not ckpt.exists()
    (a, meta_a), (b, meta_b) = load_program(out), load_program(whole)
    assert torch.equal(a.w, b.w)
    assert meta_a["history"]["metrics"] == meta_b["history"]["metrics"]


# --------------------------------------------------------------------------- galleries


@pytest.fixture
def grey_images():
    torch.manual_seed(0)
    return (0.5 + 0.05 * torch.randn(16, 3, 32, 32)).clamp(0, 1)


GALLERY = dict(eps=0.4, steps=2, batch_size=4, classes_per_run=1, progress=False, augment=False)


def _build(model, x, out, classes=(2,), **changes):
    return build_gallery(model, x, list(classes), out, **{**GALLERY, **changes})


@pytest.mark.parametrize("change, named", [
    ({"eps": 0.3}, "eps 0.4 there, 0.3 now"),
    ({"steps": 3}, "steps 2 there, 3 now"),
    ({"batch_size": 8}, "batch_size 4 there, 8 now"),
    ({"augment": True}, "augment False there, True now"),
    ({"lr": 0.05}, "lr 0.1 there, 0.05 now"),
    ({"images": "other"}, "crafting_images '16x3x32x32 float32 sha256"),
    ({"model": "other"}, "model 'tiny' there, 'other' now"),
], ids=["eps", "steps", "batch_size", "augment", "lr", "images", "model"])
@pytest.mark.parametrize("finished", [True, False], ids=["with-classes", "no-class-yet"])
def test_gallery_refuses_to_resume_with_other_settings(tiny_model, grey_images, tmp_path, monkeypatch,
                                                       change, named, finished):
    out = tmp_path / "g"
    if finished:
        _build(tiny_model, grey_images, out)
    else:  # killed before its first class: only index.json, with the settings, is there
        monkeypatch.setattr(gallery, "targeted_uap", lambda *a, **k: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):
            _build(tiny_model, grey_images, out)
        monkeypatch.undo()
        assert gallery.read_index(out)["settings"]["eps"] == 0.4 and not gallery.read_index(out)["classes"]
    change = dict(change)
    x, model = grey_images, tiny_model
    if change.pop("images", None):
        x = grey_images.flip(0)  # the same photos in another order: another fingerprint
    if change.pop("model", None):
        model = make_tiny_model()
        model.name = "other"
    with pytest.raises(ValueError, match="holds a gallery made with other settings") as e:
        _build(model, x, out, classes=(2, 7), **change)
    assert named in str(e.value) and "another --out folder" in str(e.value)
    assert ("no finished class yet" in str(e.value)) == (not finished)
    assert not (out / "class_0007.json").exists() and not (out / gallery.LOCK).exists()
    index = _build(tiny_model, grey_images, out, classes=(2, 7))  # the same settings resume it
    assert set(index["classes"]) == {"2", "7"}


def test_gallery_records_a_fingerprint_of_the_crafting_images(tiny_model, grey_images, tmp_path):
    index = _build(tiny_model, grey_images, tmp_path / "g")
    settings = json.loads((tmp_path / "g" / gallery.INDEX).read_text())["settings"]
    assert settings == index["settings"]
    assert settings["crafting_images"].startswith("16x3x32x32 float32 sha256 ")
    assert settings["crafting_images"] == reprolab.train.fingerprint(grey_images.clone())
    assert settings["crafting_images"] != reprolab.train.fingerprint(grey_images + 1e-6)


def test_an_older_index_without_the_new_settings_is_resumed_with_a_warning(tiny_model, grey_images, tmp_path):
    out = tmp_path / "g"
    _build(tiny_model, grey_images, out)
    index = json.loads((out / gallery.INDEX).read_text())
    index["settings"] = {k: index["settings"][k] for k in ("model", "eps", "steps", "batch_size")}
    (out / gallery.INDEX).write_text(json.dumps(index))
    with pytest.raises(ValueError, match="parametrization 'tanh' there, 'fourier' now"):  # all were pixels then
        _build(tiny_model, grey_images, out, parametrization="fourier")
    with pytest.warns(UserWarning, match="does not record lr, augment, seed, crafting_images"):
        _build(tiny_model, grey_images, out, classes=(2, 7))
    with pytest.raises(ValueError, match="eps 0.4 there, 0.3 now"):  # what it does record is still checked
        _build(tiny_model, grey_images, out, eps=0.3)


def _lock(out, pid, host=None):
    out.mkdir(parents=True, exist_ok=True)
    (out / gallery.LOCK).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                                "started": 0, "token": "theirs"}))


def test_a_second_writer_is_refused_while_the_first_is_alive(tiny_model, grey_images, tmp_path):
    out = tmp_path / "g"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        _lock(out, sleeper.pid)
        with pytest.raises(GalleryBusy, match=rf"being written by another run \(pid {sleeper.pid} on "):
            _build(tiny_model, grey_images, out)
        assert json.loads((out / gallery.LOCK).read_text())["token"] == "theirs"  # still theirs
        assert not gallery.read_index(out)["classes"] and not (out / gallery.INDEX).exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    with pytest.warns(UserWarning, match=f"taking over the lock of pid {sleeper.pid}"):  # now it is stale
        index = _build(tiny_model, grey_images, out)
    assert set(index["classes"]) == {"2"} and not (out / gallery.LOCK).exists()  # released at the end


def test_the_cli_names_the_run_holding_the_folder(tiny_cli, tmp_path, capsys):
    out = tmp_path / "g"
    _lock(out, 1)  # pid 1 is always alive
    assert cli.main(["gallery", "--classes", "2", "--steps", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reprolab gallery: error: ") and "pid 1 on" in err and "another --out folder" in err


def test_a_lock_from_another_host_is_never_taken_over(tiny_model, grey_images, tmp_path):
    out = tmp_path / "g"
    _lock(out, 999_999_999, host="some-other-machine")
    with pytest.raises(GalleryBusy, match="pid 999999999 on some-other-machine"):
        _build(tiny_model, grey_images, out)


def test_the_lock_is_released_after_an_error_and_taken_by_rank_0_only(tiny_model, grey_images, tmp_path,
                                                                       monkeypatch):
    out = tmp_path / "g"
    seen = []

    def failing(*a, **k):
        seen.append((out / gallery.LOCK).exists())
        raise Killed

    monkeypatch.setattr(gallery, "targeted_uap", failing)
    with pytest.raises(Killed):
        _build(tiny_model, grey_images, out)
    assert seen == [True] and not (out / gallery.LOCK).exists()
    monkeypatch.undo()

    # another rank of a torchrun job: rank 0 holds the lock for the job, so this one does not
    from reprolab import distributed

    _lock(out, 1)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _build(tiny_model, grey_images, out)
    assert json.loads((out / gallery.LOCK).read_text())["token"] == "theirs"


def test_leftover_temporary_files_are_removed_at_the_start(tiny_model, grey_images, tmp_path):
    out = tmp_path / "g"
    _build(tiny_model, grey_images, out)
    leftovers = [out / ".class_0007.png.k2j4s9.tmp", out / ".index.json.a8b7.tmp",
                 out / ".class_0007.safetensors.x1y2.tmp"]
    for f in leftovers:
        f.write_bytes(b"half a file")
    keep = out / "notes.tmp"  # not an atomic write's temporary file
    keep.write_text("mine")
    _build(tiny_model, grey_images, out, classes=(2, 7))
    assert not any(f.exists() for f in leftovers) and keep.exists()
    assert not list(out.glob(".*.tmp"))
