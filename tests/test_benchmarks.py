"""The benchmark harness must keep running: its quick mode, end to end (results not judged)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_every_zoo_entry_has_its_recipe():
    """The manifest's command for an entry is the recipe ``benchmarks/zoo.py`` runs to remake it."""
    from reprolab import zoo

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import zoo as recipes  # benchmarks/zoo.py
    finally:
        sys.path.pop(0)
    for name in zoo.names():
        assert name in recipes.RECIPES, f"{name} has no recipe in benchmarks/zoo.py"
        recipe = recipes.RECIPES[name]
        assert zoo.info(name)["command"] == recipe.remake(name)
        assert zoo.info(name)["kind"] == recipe.kind and zoo.info(name)["model"] == recipe.model


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
