"""The zoo: manifest, files and hashes agree; entries load; recorded metrics are reproduced."""

from __future__ import annotations

import json

import pytest
import torch

import reprolab
from reprolab import zoo
from reprolab.cli import main

REQUIRED = [
    "uap-sgd-linf-efficientnet_lite0", "uap-sgd-l2-efficientnet_lite0", "uap-sgd-linf-efficientnet_lite1",
    "uap-sgd-linf-efficientnet_lite2", "uap-deepfool-linf-efficientnet_lite0", "gduap-none-efficientnet_lite0",
    "gduap-range-efficientnet_lite0", "gduap-data-efficientnet_lite0", "reprogram-mnist-efficientnet_lite0",
    "reprogram-squares-efficientnet_lite0", "reprogram-mnist-first-efficientnet_lite0",
    "reprogram-mnist-iterative-efficientnet_lite0", "targeted-writeup-efficientnet_lite0",
]
METRIC = {"reprogram": "heldout_accuracy", "uap": "fooling_rate", "datafree": "fooling_rate",
          "gallery": "target_success"}


def test_manifest_files_and_hashes_agree():
    assert zoo.verify() == []
    assert set(REQUIRED) <= set(zoo.names())
    programs = sum(zoo.info(n)["bytes"] for n in set(zoo.names()) - set(zoo.galleries()))
    assert programs <= 25e6, f"the zoo's programs are {programs / 1e6:.1f} MB (limit 25 MB)"
    assert set(zoo.galleries()) >= {"gallery-efficientnet_lite0", "gallery-mobilenet_v2"}
    for name in zoo.galleries():  # a whole gallery's pictures (1,000 classes) within 30 MB
        e = zoo.info(name)
        per_class = e["bytes"] / e["metrics"]["classes"]
        assert 1000 * per_class <= 30e6, f"{name}: {per_class / 1e3:.0f} KB a class, over 30 MB for 1,000"


@pytest.mark.parametrize("name", REQUIRED)
def test_every_entry_records_its_provenance(name):
    e = zoo.info(name)
    assert e["kind"] in zoo.KINDS and e["model"] in reprolab.list_models()
    assert 0 <= e["metrics"][METRIC[e["kind"]]] <= 1 and e["metrics"]["n"] > 0
    assert e["command"].startswith("reprolab ")
    for key in ("photos", "settings", "commit", "device", "torch", "crafted_with", "sha256"):
        assert e[key], key
    # the float16 copy moved no metric by more than 0.2 points (else it is kept in float32)
    assert all(abs(e["metrics"][k] - v) <= 0.002 for k, v in e["metrics_float32"].items())


def test_load_gives_a_float32_program_with_its_record():
    program, meta = zoo.load("gduap-none-efficientnet_lite0")
    assert isinstance(program, reprolab.AdditivePerturbation) and program.w.dtype == torch.float32
    assert program.delta().abs().max() <= program.eps + 1e-7
    assert meta["zoo"]["name"] == "gduap-none-efficientnet_lite0" and meta["model"] == "efficientnet_lite0"


def test_unknown_names_and_kinds_are_clear_errors():
    with pytest.raises(ValueError, match="no zoo entry 'uap-nope'"):
        zoo.info("uap-nope")
    with pytest.raises(ValueError, match="unknown kind"):
        zoo.names("nope")


def test_a_changed_file_is_refused(tmp_path):
    program = reprolab.AdditivePerturbation(8, eps=0.1)
    torch.nn.init.normal_(program.w)
    entry = {"kind": "uap", "model": "tiny", "metrics": {"fooling_rate": 0.5, "n": 4}}
    stored = zoo.write_entry("tiny-uap", program, {"model": "tiny"}, entry, root=tmp_path)
    assert stored["dtype"] == "float16" and zoo.verify(tmp_path) == []
    loaded, _ = zoo.load("tiny-uap", root=tmp_path)
    assert torch.allclose(loaded.delta(), program.delta(), atol=1e-3)
    (tmp_path / "tiny-uap.safetensors").write_bytes((tmp_path / "tiny-uap.safetensors").read_bytes()[:-4] + b"\0" * 4)
    with pytest.raises(ValueError, match="does not match the sha256"):
        zoo.load("tiny-uap", root=tmp_path)
    assert [p.split(":")[0] for p in zoo.verify(tmp_path)] == ["zoo entry tiny-uap"]
    with pytest.raises(ValueError, match="kind must be one of"):
        zoo.write_entry("x", program, {}, {"kind": "nope", "model": "tiny", "metrics": {}}, root=tmp_path)


def test_cli_zoo_list_json(capsys):
    assert main(["zoo", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["entries"]
    assert {r["name"] for r in rows} >= set(REQUIRED)
    assert all({"name", "kind", "model", "metrics"} <= set(r) for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gduap-none-efficientnet_lite0", "reprogram-squares-efficientnet_lite0"])
def test_evaluate_reproduces_the_recorded_metric(name, capsys, data_dir):
    assert main(["evaluate", f"zoo:{name}", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    recorded = zoo.info(name)["metrics"]
    key = METRIC[zoo.info(name)["kind"]]
    assert out["n"] == recorded["n"]
    # the same photos and code: equal up to one image flipping on another CPU's arithmetic
    assert abs(out[key] - recorded[key]) <= 1 / recorded["n"] + 1e-6, (out, recorded)


@pytest.mark.slow
def test_evaluate_a_gallery_entry_on_some_classes(capsys, data_dir):
    name = "targeted-writeup-efficientnet_lite0"
    assert main(["evaluate", f"zoo:{name}", "--classes", "toucan", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    recorded = {r["id"]: r["target_success"] for r in zoo.info(name)["per_class"]}
    assert [r["id"] for r in out["per_class"]] == [96]
    assert abs(out["target_success"] - recorded[96]) <= 1 / out["n"] + 1e-6


def _tiny_pictures(tmp_path, ids=(3, 7)):
    entry = {"kind": "gallery", "model": "tiny", "metrics": {"target_success": 0.9, "n": 4},
             "per_class": [{"id": c, "target_success": 0.9} for c in ids], "command": "reprolab gallery ..."}
    return zoo.write_pictures("tiny-gallery", {c: bytes([c]) * 10 for c in ids}, entry, root=tmp_path)


def test_a_gallery_kept_as_pictures_gives_its_files_and_refuses_a_change(tmp_path):
    stored = _tiny_pictures(tmp_path)
    assert stored["format"] == zoo.PICTURES and stored["bytes"] == 20 and zoo.verify(tmp_path) == []
    assert zoo.galleries(tmp_path) == ["tiny-gallery"] and zoo.galleries(tmp_path / "none") == []
    files = zoo.pictures("tiny-gallery", root=tmp_path)
    assert sorted(files) == [3, 7] and files[7].read_bytes() == bytes([7]) * 10
    with pytest.raises(ValueError, match="keeps each class's picture, not its program"):
        zoo.load("tiny-gallery", root=tmp_path)
    files[3].write_bytes(b"changed")
    with pytest.raises(ValueError, match="does not match the sha256"):
        zoo.pictures("tiny-gallery", root=tmp_path)
    assert len(zoo.verify(tmp_path)) == 1


def test_a_gallery_summary_ranks_classes_and_times_only_the_timed_parts(tmp_path):
    rates = {1: 225 / 250, 2: 0.5, 3: 1.0, 4: 1.0, 5: 0.95}  # float 225/250 rounds to 90.0 %, not below it
    entry = {"kind": "gallery", "model": "tiny", "metrics": {"target_success": sum(rates.values()) / 5, "n": 250},
             "per_class": [{"id": c, "name": f"c{c}", "target_success": v} for c, v in rates.items()],
             "command": "reprolab gallery ...",
             "parts": [{"classes": [1, 2], "commit": "aaa", "seconds": 60},
                       {"classes": [3], "commit": "bbb"},                     # crafted before times were kept
                       {"classes": [4, 5], "commit": "ccc", "seconds": 180}]}
    zoo.write_pictures("tiny-gallery", {c: b"x" for c in rates}, entry, root=tmp_path)
    s = zoo.gallery_summary("tiny-gallery", root=tmp_path)
    assert s.classes == 5 and s.mean == pytest.approx(87.0)
    assert s.weakest(2) == [("c2", 50.0), ("c1", 90.0)] and s.best() == [("c3", 100.0), ("c4", 100.0)]
    assert (s.below_90, s.at_90, s.median) == (1, 1, 95.0)
    assert (s.timed_classes, s.parts, s.seconds, s.commits) == (4, 2, 240, ["aaa", "ccc"])
    assert s.classes_per_minute == pytest.approx(1.0) and s.hours_for(120) == pytest.approx(2.0)
    assert s.part_rates == [(2, 2.0), (2, pytest.approx(2 / 3))]


def test_a_gallery_summary_refuses_an_entry_that_is_not_a_gallery():
    with pytest.raises(ValueError, match="is not a picture gallery"):
        zoo.gallery_summary("uap-sgd-linf-efficientnet_lite0")


def test_rewriting_a_picture_gallery_drops_the_classes_it_no_longer_has(tmp_path):
    _tiny_pictures(tmp_path, ids=(3, 7))
    _tiny_pictures(tmp_path, ids=(7,))
    assert sorted(p.name for p in (tmp_path / "tiny-gallery").iterdir()) == ["class_0007.jpg"]
    assert zoo.verify(tmp_path) == []
    with pytest.raises(ValueError, match="name different classes"):
        zoo.write_pictures("x", {1: b"a"}, {"kind": "gallery", "model": "m", "metrics": {}, "command": "c",
                                            "per_class": [{"id": 2}]}, root=tmp_path)
