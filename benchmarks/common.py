"""Shared bits of the benchmark scripts: provenance of a result file, and writing it."""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

# where result files go; tests point it at a temporary folder
RESULTS = Path(os.environ.get("REPROLAB_BENCH_RESULTS", Path(__file__).resolve().parent / "results"))


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name().replace(" ", "-")
    return f"cpu-{os.cpu_count()}core"


def provenance() -> dict:
    commit = os.environ.get("REPROLAB_COMMIT")  # for copies of the tree without git (a GPU machine)
    if not commit:
        try:
            git = functools.partial(subprocess.run, capture_output=True, text=True, cwd=Path(__file__).parent)
            commit = git(["git", "rev-parse", "--short", "HEAD"]).stdout.strip()
            if git(["git", "status", "--porcelain", "--untracked-files=no", ":/reprolab", ":/benchmarks"]).stdout.strip():
                commit += "+uncommitted"  # the code that ran differs from the commit named
        except OSError:
            commit = "unknown"
    return {"command": " ".join([Path(sys.executable).name, *sys.argv]), "commit": commit,
            "device": device_name(), "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def result_path(name: str) -> Path:
    """``results/<name>-<device>.json``: where :func:`write` puts this device's results."""
    return RESULTS / f"{name}-{device_name()}.json"


def recorded_rows(name: str) -> list[dict]:
    """The ``rows`` this device's ``results/<name>-<device>.json`` holds already (a resumed run), or ``[]``."""
    path = result_path(name)
    return json.loads(path.read_text())["rows"] if path.exists() else []


def write(name: str, result: dict) -> Path:
    """Write ``results/<name>-<device>.json`` atomically and print where."""
    from reprolab.artifacts import atomic_write

    path = result_path(name)
    text = json.dumps({**provenance(), **result}, indent=2)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))
    print(f"wrote {path}")
    return path
