"""The benchmark harness must keep running: its quick mode, end to end (results not judged)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import REPO


def run_quick(script: str, results: Path) -> dict:
    """Run ``benchmarks/<script>.py --quick`` with its results in ``results``; the one file it wrote."""
    env = {**os.environ, "REPROLAB_BENCH_RESULTS": str(results)}
    run = subprocess.run([sys.executable, f"{script}.py", "--quick"], cwd=REPO / "benchmarks", env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (path,) = results.glob(f"{script}-quick-*.json")
    return json.loads(path.read_text())


@pytest.mark.slow
def test_harness_quick_mode_produces_complete_results(tmp_path):
    result = run_quick("harness", tmp_path)
    assert result["complete"] and result["commit"] and result["command"]
    rows = {(r["method"], r["variant"]): r for r in result["rows"]}
    assert set(rows) == {(m, v) for m in ("reprogramming", "sgd_uap", "gd_uap_data", "gallery")
                         for v in ("naive", "reprolab")} | {("gallery", "reprolab whole batch")}  # the test runs on CPU
    for r in rows.values():
        assert r["images_per_s"] > 0 and r["step_ms"] > 0 and r["peak_memory_mb"] > 0 and r["tflops"] > 0
        assert r["speedup_vs_naive"] == pytest.approx(r["images_per_s"] / rows[(r["method"], "naive")]["images_per_s"],
                                                      rel=0.02)
        # every row says what it timed: the package's defaults use views everywhere but reprogramming
        assert r["views"] == (r["method"] != "reprogramming") and r["channels_last"] == (r["variant"] != "naive")
        assert r["dtype"] == "float32" and r["compile"] is False


def test_views_benchmark_times_the_three_ways(tmp_path):
    result = run_quick("views", tmp_path)
    assert result["complete"]
    assert [r["variant"] for r in result["rows"]] == ["loop", "grid", "matmul"]
    assert all(r["ms"] > 0 for r in result["rows"]) and result["rows"][0]["speedup_vs_loop"] == 1.0


def zoo_recipes():
    """``benchmarks/zoo.py`` as a module."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import zoo as recipes
    finally:
        sys.path.pop(0)
    return recipes


def test_every_zoo_entry_has_its_recipe():
    """The manifest's command for an entry is the recipe ``benchmarks/zoo.py`` runs to remake it."""
    from reprolab import zoo

    recipes = zoo_recipes()
    for name in zoo.names():
        assert name in recipes.RECIPES, f"{name} has no recipe in benchmarks/zoo.py"
        recipe = recipes.RECIPES[name]
        assert zoo.info(name)["command"] == recipe.remake(name)
        assert zoo.info(name)["kind"] == recipe.kind and zoo.info(name)["model"] == recipe.model


def test_zoo_list_prints_every_recipe_with_its_cost():
    """`python benchmarks/zoo.py list` (the README's way to see the recipes) runs for every entry."""
    run = subprocess.run([sys.executable, "zoo.py", "list"], cwd=REPO / "benchmarks", capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    listed = {line.split()[0] for line in run.stdout.splitlines() if line and not line.startswith(" ")}
    assert listed == set(zoo_recipes().RECIPES)
    assert "gallery-mobilenet_v2" in listed
    # craft's refusal on a CPU names the same place to run it
    assert zoo_recipes().RECIPES["gallery-mobilenet_v2"].where() == "GPU advised, not timed on one"


def test_a_gallery_part_keeps_the_published_classes_it_does_not_craft_again(tmp_path):
    from reprolab import zoo

    recipes = zoo_recipes()
    settings = {"model": "tiny", "eps": 0.25, "steps": 200, "targets": [3, 7]}
    entry = {"kind": "gallery", "model": "tiny", "metrics": {"target_success": 0.9, "n": 250}, "settings": settings,
             "per_class": [{"id": c, "target_success": 0.9} for c in (3, 7)], "command": "reprolab gallery ...",
             "crafted_with": "first part", "commit": "abc", "device": "cpu", "torch": "2"}
    zoo.write_pictures("g", {3: b"three", 7: b"seven"}, entry, root=tmp_path)
    records, pictures, parts = recipes.earlier_parts("g", [7, 9], {**settings, "targets": [7, 9]}, 250,
                                                     root=tmp_path)
    assert [r["id"] for r in records] == [3] and pictures == {3: b"three"}
    assert parts == [{"classes": [3], "crafted_with": "first part", "commit": "abc", "device": "cpu", "torch": "2"}]
    assert recipes.earlier_parts("new", [1], settings, 250, root=tmp_path) == ([], {}, [])
    with pytest.raises(SystemExit, match=r"steps 200 there, 100 now.*--replace"):
        recipes.earlier_parts("g", [9], {**settings, "steps": 100}, 250, root=tmp_path)
    with pytest.raises(SystemExit, match="n 250 there, 64 now"):
        recipes.earlier_parts("g", [9], settings, 64, root=tmp_path)


def test_a_resumed_gallery_folder_publishes_only_its_new_classes(tmp_path):
    from reprolab import zoo

    recipes = zoo_recipes()
    entry = {"kind": "gallery", "model": "tiny", "metrics": {"target_success": 0.9, "n": 250},
             "settings": {"targets": [3, 7]}, "per_class": [{"id": 3, "target_success": 0.9},
                                                            {"id": 7, "target_success": 0.8}],
             "command": "reprolab gallery ..."}
    zoo.write_pictures("g", {3: b"three", 7: b"seven"}, entry, root=tmp_path)
    folder = [{"target_success": 0.9}, {"target_success": 0.8}, {"target_success": 0.7}]
    # the folder still holds the published 3 and 7: the part is class 9 alone, so its time is 9's
    assert recipes.unpublished("g", [3, 7, 9], folder, root=tmp_path) == [9]
    assert recipes.unpublished("new", [3, 7], folder[:2], root=tmp_path) == [3, 7]
    with pytest.raises(SystemExit, match=r"classes \[7\].*crafted again.*--replace"):
        recipes.unpublished("g", [3, 7], [{"target_success": 0.9}, {"target_success": 0.85}], root=tmp_path)


def test_a_part_crafted_by_hand_is_logged_with_its_new_classes_and_time(tmp_path, monkeypatch):
    from reprolab import zoo

    recipes = zoo_recipes()
    monkeypatch.setattr(recipes, "WORK", tmp_path)
    name = "gallery-mobilenet_v2"
    entry = {"kind": "gallery", "model": "mobilenet_v2", "metrics": {"target_success": 0.9, "n": 250},
             "settings": {"targets": [3]}, "per_class": [{"id": 3, "target_success": 0.9}], "command": "..."}
    zoo.write_pictures(name, {3: b"three"}, entry, root=tmp_path / "zoo")
    folder = tmp_path / name
    folder.mkdir()
    start = 1_800_000_000  # 2027-01-15T08:00:00Z
    for c, rate, saved in ((3, 0.9, start - 50), (7, 0.8, start + 60), (9, 0.7, start + 130)):
        path = folder / f"class_{c:04d}.json"
        path.write_text(json.dumps({"id": c, "program": f"class_{c:04d}.safetensors", "target_success": rate}))
        os.utime(path, (saved, saved))
    log = recipes.log_part(name, folder, "2027-01-15T08:00:00Z", "abc1234", root=tmp_path / "zoo")
    # class 3 was published by an earlier part: this part is 7 and 9, up to 9's save
    assert log["result"] == {"classes": 2} and log["seconds"] == 130 and log["commit"] == "abc1234"
    assert log["command"].startswith("reprolab gallery --model mobilenet_v2") and "the 1 class published before was skipped" in log["command"]
    assert json.loads((tmp_path / f"{name}.json").read_text()) == log
    ran = "reprolab gallery --model mobilenet_v2 --classes order.txt --out g/"
    assert recipes.log_part(name, folder, "2027-01-15T08:00:00+00:00", "abc", ran, root=tmp_path / "zoo")[
        "command"].startswith(ran + " (resumed")
    with pytest.raises(SystemExit, match="no time zone"):
        recipes.log_part(name, folder, "2027-01-15T08:00:00", "abc1234", root=tmp_path / "zoo")
    with pytest.raises(SystemExit, match=r"classes \[7, 9\] .* saved before --started"):
        recipes.log_part(name, folder, "2027-01-16T08:00:00Z", "abc1234", root=tmp_path / "zoo")
    with pytest.raises(SystemExit, match=r"classes \[7\] .* saved before --started"):  # 7 from an earlier run
        recipes.log_part(name, folder, "2027-01-15T08:01:05Z", "abc1234", root=tmp_path / "zoo")


@pytest.mark.slow
def test_transfer_quick_mode_fills_every_cell(tmp_path):
    import reprolab

    result = run_quick("transfer", tmp_path)
    assert result["targets"] == reprolab.list_models("offline") and result["n"] == 16
    assert result["rows"][-1]["program"] == "random noise" and len(result["rows"]) >= 4
    for row in result["rows"]:
        assert set(row["fooling_rate"]) == set(result["targets"])
        assert all(0 <= v <= 1 for v in row["fooling_rate"].values())


@pytest.mark.slow
def test_data_size_quick_mode_measures_every_method(tmp_path):
    result = run_quick("data_size", tmp_path)
    assert {r["method"] for r in result["rows"]} == {"sgd", "deepfool", "deepfool+views"}
    assert all(0 <= r["fooling_rate"] <= 1 and r["n"] == 16 for r in result["rows"])
    assert 0 <= result["noise"]["fooling_rate"] <= 1


@pytest.mark.slow
def test_reimplementation_quick_mode_runs_every_slip(tmp_path):
    result = run_quick("reimplementation", tmp_path)
    slips = {(r["after_normalisation"], r["lr_decay"]) for r in result["rows"]}
    assert slips == {(True, True), (False, False), (True, False), (False, True)}
    decayed = [r for r in result["rows"] if r["lr_decay"]]
    assert all(r["final_lr"] < 0.1 for r in decayed)


@pytest.mark.slow
def test_reprogramming_levers_quick_mode_maps_m_classes_per_digit(tmp_path):
    result = run_quick("reprogramming_levers", tmp_path)
    assert {(r["m"], r["image_size"]) for r in result["rows"]} == {(1, 32), (2, 32)}
    for r in result["rows"]:
        # m distinct ImageNet classes for each of the 10 digits, no class shared between digits
        assert len(r["mapped_classes"]) == 10 and all(len(row) == r["m"] for row in r["mapped_classes"])
        assert len({c for row in r["mapped_classes"] for c in row}) == 10 * r["m"]
        assert 0 <= r["validation_accuracy"] <= 1 and r["validation_images"] == 100
    summary = result["summary"]
    assert summary[0]["validation_accuracy"] >= summary[-1]["validation_accuracy"]  # best validation first
    assert result["picked_by_validation"] == {k: summary[0][k] for k in ("m", "image_size")}


@pytest.mark.slow
def test_parametrization_quick_mode_compares_both_with_a_figure(tmp_path):
    result = run_quick("parametrization", tmp_path)
    assert [r["parametrization"] for r in result["rows"]] == ["tanh", "fourier"]
    assert all(0 <= r["target_success"] <= 1 and 0 <= r["high_frequency_share"] <= 1 for r in result["rows"])
    assert list(tmp_path.glob("parametrization-quick-*.png"))


def test_every_sweep_variant_names_arguments_its_crafting_function_takes():
    """A misspelt setting in ``benchmarks/sweep.py`` would only fail hours into a sweep."""
    import inspect

    from reprolab import datafree, uap

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import sweep
    finally:
        sys.path.pop(0)
    takes = {"sgd": inspect.signature(uap.sgd_uap).parameters,
             "none": inspect.signature(datafree.datafree_uap).parameters,
             "data": inspect.signature(datafree.datafree_uap).parameters}
    fit_takes = inspect.signature(__import__("reprolab").fit).parameters  # the rest go on to fit
    for name, (method, settings) in sweep.VARIANTS.items():
        assert method in sweep.METHODS, name
        for key in settings:
            assert key in takes[method] or key in fit_takes, f"{name}: {key}"
    photos = torch.arange(250)
    # SGD-UAP and the data prior craft on the first 200 crafting photos and validate on the rest
    assert sweep.validation_photos(photos, "data").tolist() == list(range(200, 250))
    assert sweep.validation_photos(photos, "sgd").tolist() == list(range(200, 250))
    assert len(sweep.validation_photos(photos, "none")) == 250  # it sees no photo: all of them validate it
