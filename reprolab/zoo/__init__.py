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

A whole gallery (a change for each of up to 1,000 classes) would be 300 MB of
programs, so its entry keeps pictures instead: a folder with one small JPEG a class
(``0.5 + delta``, the change on grey) and the per-class held-out rates in the
manifest; :func:`pictures` gives the files, and the entry's command remakes the
programs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from ..artifacts import atomic_write, save_artifact
from ..programs import InputProgram, load_program

ROOT = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
KINDS = ("reprogram", "uap", "datafree", "gallery")
PREFIX = "zoo:"
PICTURES = "pictures"  # the format of an entry kept as a folder of pictures (see the module docstring)


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


def galleries(root: str | Path = ROOT) -> list[str]:
    """The galleries kept as pictures (one JPEG a class, :func:`pictures`), sorted."""
    entries = read_manifest(root)["entries"]
    return sorted(n for n, e in entries.items() if e.get("format") == PICTURES)


def info(name: str, root: str | Path = ROOT) -> dict:
    """A copy of ``name``'s manifest entry (kind, model, metrics, settings, command, ...)."""
    entries = read_manifest(root)["entries"]
    if name not in entries:
        close = [n for n in entries if name.split("-")[0] in n]
        raise ValueError(f"no zoo entry {name!r}; `reprolab zoo list` shows them"
                         + (f" (similar: {', '.join(sorted(close)[:5])})" if close else ""))
    return {"name": name, **copy.deepcopy(entries[name])}


def folder_sha256(folder: str | Path) -> str:
    """Hex sha256 of a folder's files: of the sorted lines ``"<name> <sha256 of the file>"``."""
    lines = "".join(f"{f.name} {sha256(f)}\n" for f in sorted(Path(folder).iterdir()) if f.is_file())
    return hashlib.sha256(lines.encode()).hexdigest()


def path(name: str, root: str | Path = ROOT, check: bool = True) -> Path:
    """The entry's file (a folder for a gallery of pictures), its sha256 checked unless ``check=False``."""
    entry = info(name, root)
    file = Path(root) / entry["file"]
    is_folder = entry.get("format") == PICTURES
    if not (file.is_dir() if is_folder else file.is_file()):
        raise FileNotFoundError(f"zoo entry {name}: {file} is missing; reinstall reprolab "
                                f"or remake it with `python benchmarks/zoo.py craft --only {name}`")
    if check and (folder_sha256(file) if is_folder else sha256(file)) != entry["sha256"]:
        raise ValueError(f"zoo entry {name}: {file} does not match the sha256 in {MANIFEST}; "
                         "the file is damaged or was changed (reinstall reprolab)")
    return file


def pictures(name: str, root: str | Path = ROOT) -> dict[int, Path]:
    """Class id -> JPEG of its change on grey (``0.5 + delta``), for a gallery kept as pictures."""
    entry = info(name, root)
    if entry.get("format") != PICTURES:
        raise ValueError(f"zoo entry {name} keeps programs, not pictures: use zoo.load({name!r})")
    folder = path(name, root)
    return {int(r["id"]): folder / picture_name(int(r["id"])) for r in entry["per_class"]}


def picture_name(class_id: int) -> str:
    return f"class_{class_id:04d}.jpg"


def load(name: str, device: str | torch.device | None = None,
         root: str | Path = ROOT) -> tuple[InputProgram, dict]:
    """``(program, metadata)`` of a zoo entry, in float32 (on ``device`` when given).

    The metadata is the artifact's own (model, settings, ...) with the manifest entry
    under ``"zoo"``.
    """
    entry = info(name, root)
    if entry.get("format") == PICTURES:
        raise ValueError(f"zoo entry {name} keeps each class's picture, not its program (the programs of "
                         f"{len(entry['per_class'])} classes would be {len(entry['per_class']) * 0.3:.0f} MB): "
                         f"use zoo.pictures({name!r}), or remake the programs with `{entry['command']}`")
    program, meta = load_program(path(name, root))
    program = program.float()
    if device is not None:
        program = program.to(device)
    return program, {**meta, "zoo": entry}


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
    return _record(root, name, {**entry, "file": file.name, "dtype": dtype, "sha256": sha256(file),
                                "bytes": file.stat().st_size})


def write_pictures(name: str, jpegs: dict[int, bytes], entry: dict, root: str | Path = ROOT) -> dict:
    """Store a gallery as pictures: ``name/class_NNNN.jpg`` per class id in ``jpegs``, and ``entry``.

    ``entry`` needs what :func:`write_entry` needs plus ``per_class`` (one record with an
    ``id`` per picture) and ``command`` (it remakes the programs). Pictures of classes no
    longer in ``jpegs`` are deleted; each file is written atomically, the manifest last.
    """
    if entry.get("kind") != "gallery":
        raise ValueError(f"only a gallery is kept as pictures, got kind {entry.get('kind')!r}")
    missing = [k for k in ("model", "metrics", "per_class", "command") if k not in entry]
    if missing:
        raise ValueError(f"zoo entry {name} needs {', '.join(missing)}")
    if sorted(int(r["id"]) for r in entry["per_class"]) != sorted(jpegs):
        raise ValueError(f"zoo entry {name}: per_class and the pictures name different classes")
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    keep = {picture_name(c) for c in jpegs}
    for f in folder.iterdir():
        if f.name not in keep:
            f.unlink()
    for c, data in jpegs.items():
        atomic_write(folder / picture_name(c), lambda tmp, data=data: Path(tmp).write_bytes(data))
    size = sum(f.stat().st_size for f in folder.iterdir())
    return _record(Path(root), name, {**entry, "file": name, "format": PICTURES, "sha256": folder_sha256(folder),
                                      "bytes": size})


def _record(root: Path, name: str, entry: dict) -> dict:
    """Put ``entry`` in the manifest under ``name`` (written atomically)."""
    manifest = read_manifest(root)
    manifest["entries"][name] = entry
    manifest["entries"] = dict(sorted(manifest["entries"].items()))
    text = json.dumps(manifest, indent=1) + "\n"
    atomic_write(root / MANIFEST, lambda tmp: Path(tmp).write_text(text))
    return entry


def verify(root: str | Path = ROOT) -> list[str]:
    """Problems between manifest, files and hashes (an empty list when all agree)."""
    root = Path(root)
    entries = read_manifest(root)["entries"]
    problems = []
    for name in entries:
        try:
            path(name, root)
        except (FileNotFoundError, ValueError) as e:
            problems.append(str(e))
    listed = {e["file"] for e in entries.values()}
    problems += [f"{f.name} is not in the manifest" for f in root.glob("*.safetensors") if f.name not in listed]
    return problems


@dataclass(frozen=True)
class GallerySummary:
    """What a picture gallery's manifest entry says, as the book's pages report it.

    ``ranked`` is ``(class name, held-out success in %)`` from weakest to best, each rounded
    to 0.1 (float32 holds 225/250 as 89.99..., which is 90.0 %). ImageNet repeats two class
    names, so it is a list, not a dict. Rates count only parts with a recorded time
    (``timed``: ``(classes, seconds)`` of each, in crafting order).
    """

    classes: int
    mean: float                 # % over the classes' held-out target success
    ranked: list[tuple[str, float]]
    timed: list[tuple[int, float]]
    commits: list[str]          # of the timed parts, in crafting order
    bytes: int

    @property
    def parts(self) -> int:
        """Parts with a recorded time."""
        return len(self.timed)

    @property
    def timed_classes(self) -> int:
        return sum(n for n, _ in self.timed)

    @property
    def seconds(self) -> float:
        return sum(s for _, s in self.timed)

    @property
    def part_rates(self) -> list[tuple[int, float]]:
        """``(classes, classes a minute)`` of each timed part: parts may run on machines of different speed."""
        return [(n, n / s * 60) for n, s in self.timed]

    @property
    def median(self) -> float:
        return statistics.median(v for _, v in self.ranked)

    @property
    def below_90(self) -> int:
        return sum(v < 90 for _, v in self.ranked)

    @property
    def at_90(self) -> int:
        return sum(v == 90 for _, v in self.ranked)

    def weakest(self, k: int = 10) -> list[tuple[str, float]]:
        return self.ranked[:k]

    def best(self) -> list[tuple[str, float]]:
        """Every class that ties for the highest rate."""
        return [kv for kv in self.ranked if kv[1] == self.ranked[-1][1]]

    @property
    def classes_per_minute(self) -> float:
        return self.timed_classes / self.seconds * 60 if self.seconds else float("nan")

    def hours_for(self, classes: int) -> float:
        """Crafting time for ``classes`` more classes at the measured rate."""
        return classes / self.classes_per_minute / 60


def gallery_summary(name: str, root: str | Path = ROOT) -> GallerySummary:
    """Summarise a picture gallery entry: rates, weakest and best classes, crafting speed."""
    e = info(name, root)
    if e.get("format") != PICTURES:
        raise ValueError(f"{name} is not a picture gallery; zoo.galleries() lists them")
    ranked = sorted(((r["name"], round(100 * r["target_success"], 1)) for r in e["per_class"]),
                    key=lambda kv: kv[1])
    timed = [part for part in e.get("parts", []) if part.get("seconds")]
    return GallerySummary(
        classes=len(ranked), mean=100 * e["metrics"]["target_success"], ranked=ranked,
        timed=[(len(part["classes"]), part["seconds"]) for part in timed],
        commits=list(dict.fromkeys(part["commit"] for part in timed)), bytes=e["bytes"])


def percent_digits(n: int) -> int:
    """Decimals a rate measured on ``n`` images is printed with, as a percentage.

    >>> percent_digits(250), percent_digits(2000)
    (1, 2)
    """
    return 2 if n >= 1000 else 1  # 2,000 held-out images resolve 0.05 points


def describe(name: str, root: str | Path = ROOT) -> str:
    """One line on where an entry comes from: command, device, time, recorded metrics."""
    e = info(name, root)
    digits = percent_digits(e["metrics"]["n"])
    rates = ", ".join(f"{k.replace('_', ' ')} {v:.{digits}%}" for k, v in e["metrics"].items()
                      if isinstance(v, float) and k != "target_prob")
    seconds = f" in {e['crafting_seconds']:.0f} s" if e.get("crafting_seconds") else ""
    return (f"{name}: {rates} on n = {e['metrics']['n']} held-out images; crafted on {e['device']}{seconds} "
            f"(commit {e['commit']}); remake: `{e['command']}`")
