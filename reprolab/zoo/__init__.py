"""Pretrained programs by name: the zoo.

Each entry is a compact copy (float16 tensors) of a program crafted by one of the
package's methods, with a manifest that records its settings, its held-out metrics
(``n`` and which photos), the command that remakes it, and where it was made::

    >>> from reprolab import zoo
    >>> "uap-sgd-linf-efficientnet_lite0" in zoo.names()
    True
    >>> zoo.info("uap-sgd-linf-efficientnet_lite0")["kind"]
    'uap'

``zoo.load(name)`` checks the file's sha256 against the manifest, then returns
``(program, metadata)`` like :func:`reprolab.load_program`. The CLI takes ``zoo:NAME``
wherever it takes an artifact path (``reprolab evaluate zoo:NAME``), and
``benchmarks/zoo.py`` remakes any entry from scratch.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import torch

from ..artifacts import atomic_write, save_artifact
from ..programs import InputProgram, load_program

ROOT = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
KINDS = ("reprogram", "uap", "datafree", "gallery")
PREFIX = "zoo:"


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(root: str | Path = ROOT) -> dict:
    """The manifest: ``{"entries": {name: entry}}`` (empty when there is none yet)."""
    path = Path(root) / MANIFEST
    if not path.exists():
        return {"entries": {}}
    return json.loads(path.read_text())


def names(kind: str | None = None, root: str | Path = ROOT) -> list[str]:
    """Entry names, sorted; only those of ``kind`` (one of :data:`KINDS`) when given."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    entries = read_manifest(root)["entries"]
    return sorted(n for n, e in entries.items() if kind is None or e["kind"] == kind)


def info(name: str, root: str | Path = ROOT) -> dict:
    """A copy of ``name``'s manifest entry (kind, model, metrics, settings, command, ...)."""
    entries = read_manifest(root)["entries"]
    if name not in entries:
        close = [n for n in entries if name.split("-")[0] in n]
        raise ValueError(f"no zoo entry {name!r}; `reprolab zoo list` shows them"
                         + (f" (similar: {', '.join(sorted(close)[:5])})" if close else ""))
    return {"name": name, **copy.deepcopy(entries[name])}


def path(name: str, root: str | Path = ROOT, check: bool = True) -> Path:
    """The entry's file, its sha256 checked against the manifest unless ``check=False``."""
    entry = info(name, root)
    file = Path(root) / entry["file"]
    if not file.is_file():
        raise FileNotFoundError(f"zoo entry {name}: {file} is missing; reinstall reprolab "
                                f"or remake it with `python benchmarks/zoo.py craft --only {name}`")
    if check and sha256(file) != entry["sha256"]:
        raise ValueError(f"zoo entry {name}: {file} does not match the sha256 in {MANIFEST}; "
                         "the file is damaged or was changed (reinstall reprolab)")
    return file


def load(name: str, device: str | torch.device | None = None,
         root: str | Path = ROOT) -> tuple[InputProgram, dict]:
    """``(program, metadata)`` of a zoo entry, in float32 (on ``device`` when given).

    The metadata is the artifact's own (model, settings, ...) with the manifest entry
    under ``"zoo"``.
    """
    program, meta = load_program(path(name, root))
    program = program.float()
    if device is not None:
        program = program.to(device)
    return program, {**meta, "zoo": info(name, root)}


def resolve(spec: str | Path) -> Path:
    """``"zoo:NAME"`` -> the entry's checked file; any other path is returned as it is."""
    text = str(spec)
    return path(text[len(PREFIX):]) if text.startswith(PREFIX) else Path(spec)


def half_copy(program: InputProgram) -> dict[str, torch.Tensor]:
    """The program's tensors with floating ones in float16 (integers, e.g. label maps, as they are)."""
    return {k: (v.half() if v.is_floating_point() else v) for k, v in program.state_dict().items()}


def write_entry(name: str, program: InputProgram, meta: dict, entry: dict, root: str | Path = ROOT,
                dtype: str = "float16") -> dict:
    """Store ``program`` as ``name.safetensors`` and record ``entry`` (plus file and hash) in the manifest.

    ``entry`` needs ``kind`` (one of :data:`KINDS`), ``model`` and ``metrics``; the rest
    (settings, command, commit, device, ...) is kept as given. Both files are written
    atomically, the manifest last.
    """
    if entry.get("kind") not in KINDS:
        raise ValueError(f"entry kind must be one of {', '.join(KINDS)}, got {entry.get('kind')!r}")
    missing = [k for k in ("model", "metrics") if k not in entry]
    if missing:
        raise ValueError(f"zoo entry {name} needs {', '.join(missing)}")
    root = Path(root)
    tensors = half_copy(program) if dtype == "float16" else program.state_dict()
    file = root / f"{name}.safetensors"
    save_artifact(file, tensors, {**meta, "program": type(program).__name__, "config": program.config})
    manifest = read_manifest(root)
    manifest["entries"][name] = {**entry, "file": file.name, "dtype": dtype, "sha256": sha256(file),
                                 "bytes": file.stat().st_size}
    manifest["entries"] = dict(sorted(manifest["entries"].items()))
    text = json.dumps(manifest, indent=1) + "\n"
    atomic_write(root / MANIFEST, lambda tmp: Path(tmp).write_text(text))
    return manifest["entries"][name]


def verify(root: str | Path = ROOT) -> list[str]:
    """Problems between manifest, files and hashes (an empty list when all agree)."""
    root = Path(root)
    entries = read_manifest(root)["entries"]
    problems = []
    for name, e in entries.items():
        file = root / e["file"]
        if not file.is_file():
            problems.append(f"{name}: {e['file']} is missing")
        elif sha256(file) != e["sha256"]:
            problems.append(f"{name}: {e['file']} does not match its sha256")
    listed = {e["file"] for e in entries.values()}
    problems += [f"{f.name} is not in the manifest" for f in root.glob("*.safetensors") if f.name not in listed]
    return problems


def describe(name: str, root: str | Path = ROOT) -> str:
    """One line on where an entry comes from: command, device, time, recorded metrics."""
    e = info(name, root)
    digits = 2 if e["metrics"]["n"] >= 1000 else 1  # 2,000 held-out images resolve 0.05 points
    rates = ", ".join(f"{k.replace('_', ' ')} {v:.{digits}%}" for k, v in e["metrics"].items()
                      if isinstance(v, float) and k != "target_prob")
    seconds = f" in {e['crafting_seconds']:.0f} s" if e.get("crafting_seconds") else ""
    return (f"{name}: {rates} on n = {e['metrics']['n']} held-out images; crafted on {e['device']}{seconds} "
            f"(commit {e['commit']}); remake: `{e['command']}`")
