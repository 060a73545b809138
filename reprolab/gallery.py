"""The diagnostic gallery (after Nozdryn-Plotnicki 2018): one targeted universal image per class, on disk.

For a target class, one change ``delta = eps * tanh(w)`` that, added to almost any
image, makes the network answer the target (crafted by
:func:`reprolab.uap.targeted_uap`). This module keeps the gallery's files: one
program, one picture and one record per class, an ``index.json``, a lock against a
second writer, resumable per class.
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
import socket
import time
import uuid
import warnings
from pathlib import Path

import torch

from . import distributed
from .artifacts import atomic_write
from .metrics import targeted_success
from .models import FrozenClassifier
from .programs import AdditivePerturbation, load_program, save_program
from .render import render_change
from .train import fingerprint, progress_bar
from .uap import targeted_uap

INDEX = "index.json"
LOCK = ".lock"


def parse_classes(spec: str | list, class_names: list[str]) -> list[int]:
    """Class ids from ``"all"``, ids or names (a list, or comma-separated), or a file of them (``#`` comments).

    >>> parse_classes("1, toucan", ["a", "goldfish"] + ["x"] * 94 + ["toucan"])
    [1, 96]
    """
    if isinstance(spec, str):
        if spec.strip() == "all":
            return list(range(len(class_names)))
        path = Path(spec)
        if path.suffix in (".txt", ".csv") and not path.is_file():
            raise FileNotFoundError(f"no class file at {path}; give a .txt file with one id or name per line, "
                                    "or the classes themselves separated by commas")
        try:
            items = ([ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
                     if path.suffix in (".txt", ".csv") else spec.split(","))
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read the class file {path}: {e}") from e
    else:
        items = list(spec)
    by_name: dict[str, list[int]] = {}
    for i, n in enumerate(class_names):
        by_name.setdefault(n.lower(), []).append(i)
    out = []
    for item in (str(s).strip() for s in items):
        if not item:
            continue
        if item.lstrip("+-").isdigit():
            if not 0 <= int(item) < len(class_names):
                raise ValueError(f"class id {item} is out of range: the model has {len(class_names)} classes "
                                 f"(0-{len(class_names) - 1})")
            out.append(int(item))
        elif len(by_name.get(item.lower(), [])) > 1:
            ids = by_name[item.lower()]
            raise ValueError(f"class name {item!r} is ambiguous: classes {', '.join(map(str, ids))} are all called "
                             "that; give the id instead")
        elif item.lower() in by_name:
            out.append(by_name[item.lower()][0])
        else:
            close = difflib.get_close_matches(item.lower(), list(by_name), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `reprolab gallery --help`"
            raise ValueError(f"unknown class name {item!r}{hint}")
    if not out:
        raise ValueError(f"no classes in {spec!r}; give 'all', ids like 33,96 or names like toucan")
    return list(dict.fromkeys(out))  # unique, in order


def read_index(out_dir: str | Path) -> dict:
    """The gallery's index: ``{"settings": ..., "classes": {id: entry}}`` (empty if none yet).

    Each finished class has its own ``class_NNNN.json`` entry, written last, so the
    classes are read from those (a run stopped, or several ranks writing at once, lose
    nothing); ``index.json`` holds the settings and a summary of them all.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} is a file, not a gallery folder")
    path = out_dir / INDEX
    index = _read_json(path, "delete it: rerunning `reprolab gallery` with the same settings writes it again")
    index = index if index is not None else {"classes": {}}
    if not isinstance(index.get("classes", {}), dict) or not isinstance(index.get("settings", {}), dict):
        raise ValueError(f"{path} is not a gallery index (its 'classes' and 'settings' should be JSON objects); "
                         "delete it: rerunning `reprolab gallery` with the same settings writes it again")
    index.setdefault("classes", {})
    for entry_file in sorted(out_dir.glob("class_*.json")):
        fix = ("delete it and its .safetensors and .png, then rerun `reprolab gallery` with the same settings "
               "to craft that class again")
        entry = _read_json(entry_file, fix)
        if not isinstance(entry.get("id"), int) or not isinstance(entry.get("program"), str):
            raise ValueError(f"{entry_file} is not a gallery entry (it needs an integer 'id' and a 'program' "
                             f"file name); {fix}")
        index["classes"][str(entry["id"])] = entry
    return index


def _read_json(path: Path, fix: str) -> dict | None:
    """A JSON object from ``path`` (``None`` if there is no file); a damaged file names itself and the fix."""
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text())
    except (ValueError, OSError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{path} is damaged (not JSON: {e}); {fix}") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path} should hold a JSON object, got {type(obj).__name__}; {fix}")
    return obj


def _write_json(path: Path, obj: dict) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=1)))


class GalleryBusy(RuntimeError):
    """Another process is writing the gallery folder (its ``.lock`` names it)."""


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # no signal 0 there (0 is CTRL_C_EVENT): never judge a lock stale
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


class FolderLock:
    """``DIR/.lock``, created with ``O_CREAT | O_EXCL``: one writer per gallery folder.

    The file holds the owner's pid, host and start time. A lock whose pid is not alive
    on this host (a killed run) is taken over with a warning; one held by a live
    process, or by another host, is refused with :class:`GalleryBusy`. The lock is
    removed by :meth:`release` (only if it is still this one's).
    """

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK
        self.token = uuid.uuid4().hex
        self.held = False

    def _holder(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def _stale(self, holder: dict | None) -> bool:
        pid, host = (holder or {}).get("pid"), (holder or {}).get("host")
        if not (isinstance(pid, int) and pid > 0 and isinstance(host, str)):
            # empty or damaged: a writer killed between creating and filling it
            try:
                return time.time() - self.path.stat().st_mtime > 30
            except OSError:
                return True  # gone already
        return host == socket.gethostname() and not _pid_alive(pid)

    def acquire(self) -> "FolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if not self.path.exists():  # released meanwhile: try again
                    continue
                if attempt < 2 and self._stale(holder):
                    if self._holder() == holder:  # not retaken meanwhile
                        who = (f"pid {holder.get('pid')} on {holder.get('host')}"
                               if isinstance((holder or {}).get("pid"), int) else "an unknown process")
                        warnings.warn(f"{self.path}: taking over the lock of {who}, which is no longer running "
                                      "(a run that was killed)", stacklevel=3)
                        self.path.unlink(missing_ok=True)
                    continue
                if not isinstance((holder or {}).get("pid"), int):
                    raise GalleryBusy(f"{self.path.parent} is being written by another process (its {LOCK} is being "
                                      f"created); if no other run is going, delete {self.path} and rerun") from None
                started = holder.get("started")
                since = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
                         if isinstance(started, (int, float)) else "an unknown time")
                raise GalleryBusy(f"{self.path.parent} is being written by another run (pid {holder.get('pid')} on "
                                  f"{holder.get('host')}, since {since}); wait for it to finish or use another --out "
                                  f"folder. If that run is gone, delete {self.path} and rerun") from None
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                           "token": self.token}, f)
            self.held = True
            return self
        raise GalleryBusy(f"could not take the lock {self.path}: other runs keep taking it; use another --out folder")

    def release(self) -> None:
        if self.held and (self._holder() or {}).get("token") == self.token:
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Delete the temporary files of atomic writes that were interrupted (``.NAME.XXXX.tmp``)."""
    folder = Path(folder)
    gone = []
    for tmp in folder.glob(".*.tmp") if folder.is_dir() else []:
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


_CRAFT_DEFAULTS = {k: p.default for k, p in inspect.signature(targeted_uap).parameters.items()
                   if k in ("lr", "augment", "seed", "parametrization")}


def gallery_settings(model: FrozenClassifier, x: torch.Tensor, eps: float, steps: int, batch_size: int,
                     **kwargs) -> dict:
    """What a gallery's classes must share to be resumed together (stored in ``index.json``).

    The model, bound, steps, batch size, learning rate, views (``augment``), seed and a
    fingerprint of the crafting images (their shape, dtype and sha256).
    """
    settings = {"model": model.name, "eps": eps, "steps": steps, "batch_size": batch_size,
                **{k: kwargs.get(k, default) for k, default in _CRAFT_DEFAULTS.items()},
                "crafting_images": fingerprint(x)}
    return json.loads(json.dumps(settings))  # as index.json holds them


def check_settings(out_dir: Path, index: dict, settings: dict) -> None:
    """Refuse to add to a gallery made with other settings, naming the differences."""
    recorded = index.get("settings")
    if not recorded:
        return
    recorded = {"parametrization": "tanh", **recorded}  # the only one before the option existed
    diffs = [f"{k} {recorded[k]!r} there, {settings[k]!r} now" for k in settings
             if k in recorded and recorded[k] != settings[k]]
    if diffs:
        start_over = (f"; it has no finished class yet, so deleting {out_dir / INDEX} starts it again"
                      if not index["classes"] else "")
        raise ValueError(f"{out_dir} holds a gallery made with other settings ({'; '.join(diffs)}): rerun with "
                         f"its settings to resume it, or use another --out folder{start_over}")
    missing = [k for k in settings if k not in recorded]
    if missing:
        warnings.warn(f"{out_dir / INDEX} does not record {', '.join(missing)} (an older reprolab wrote it): "
                      "resuming without checking them", stacklevel=3)


def _rank0_first(prepare) -> None:
    """``prepare()`` on rank 0 alone; under torchrun every rank then fails if it failed there."""
    error = None
    if distributed.rank() == 0:
        try:
            prepare()
        except BaseException as e:  # noqa: BLE001 -- re-raised below, after the others are told
            error = e
    if distributed.active():
        import torch.distributed as dist

        box = [None if error is None else f"{type(error).__name__}: {error}"]
        dist.broadcast_object_list(box, src=0)  # also a barrier: the folder is ready past here
        if error is None and box[0] is not None:
            raise RuntimeError(f"rank 0 could not start the gallery: {box[0]}")
    if error is not None:
        raise error


def build_gallery(model: FrozenClassifier, x: torch.Tensor, classes: list[int], out_dir: str | Path,
                  eps: float = 64 / 255, steps: int = 200, batch_size: int = 4, classes_per_run: int = 10,
                  heldout: torch.Tensor | None = None, progress: bool = True, **kwargs) -> dict:
    """Craft (or resume) a gallery: a PNG, a program and an entry per class, plus ``index.json``.

    Classes already finished are skipped, so a stopped run picks up where it was. Each
    class's files are written atomically, its ``class_NNNN.json`` entry last. Under
    ``torchrun`` every rank crafts its share of the runs of ``classes_per_run`` classes
    into the same folder (no gradient exchange is needed between classes).

    The settings (:func:`gallery_settings`, with a fingerprint of ``x``) go into
    ``index.json`` first; resuming with other ones is refused with the differences
    named, whether or not a class is finished. One process writes a folder at a time:
    ``out_dir/.lock`` (:class:`FolderLock`, taken by rank 0 alone under ``torchrun``)
    refuses a second one with :class:`GalleryBusy`. Temporary files left by an
    interrupted write are deleted at the start.

    Args:
        x: crafting images; heldout: images to measure ``target_success`` on.
        classes_per_run: classes crafted together in one optimisation.
        kwargs: passed to :func:`targeted_uap` (lr, augment, seed, ...).

    Returns:
        the index (also in ``out_dir/index.json``).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} is a file, not a gallery folder")
    settings = gallery_settings(model, x, eps, steps, batch_size, **kwargs)
    lock = FolderLock(out_dir)

    def prepare():
        lock.acquire()
        remove_leftovers(out_dir)
        index = read_index(out_dir)
        check_settings(out_dir, index, settings)
        _write_json(out_dir / INDEX, {**index, "settings": settings})

    try:
        _rank0_first(prepare)
        index = read_index(out_dir)
        todo = [c for c in classes if str(c) not in index["classes"]]
        runs = [todo[i:i + classes_per_run] for i in range(0, len(todo), classes_per_run)]
        mine = runs[distributed.rank()::distributed.world_size()]
        bar = progress_bar(sum(map(len, mine)), 0, progress and distributed.rank() == 0, "gallery classes")
        for chunk in mine:
            program, _ = targeted_uap(model, x, chunk, eps, steps, batch_size, progress=False,
                                      data_parallel=False, **kwargs)
            rates = targeted_success(model, program, heldout, chunk) if heldout is not None else None
            for k, c in enumerate(chunk):
                stem = f"class_{c:04d}"
                entry = {"id": c, "name": model.class_names[c], "png": f"{stem}.png",
                         "program": f"{stem}.safetensors"}
                if rates is not None:
                    entry.update(target_success=rates["per_class"][k], target_prob=rates["per_class_prob"][k],
                                 heldout_images=len(heldout))
                save_program(out_dir / entry["program"], program.select(k), target=c, **settings)
                atomic_write(out_dir / entry["png"],
                             lambda tmp, k=k: render_change(program.delta()[k]).save(tmp, format="PNG"))
                _write_json(out_dir / f"{stem}.json", entry)
            if distributed.rank() == 0:  # keep the summary current for anyone looking mid-run
                _write_json(out_dir / INDEX, {**read_index(out_dir), "settings": settings})
            bar.update(len(chunk))
        bar.close()
        distributed.barrier()  # every rank's classes are on disk
        index = {**read_index(out_dir), "settings": settings}
        if distributed.rank() == 0:
            _write_json(out_dir / INDEX, index)
        return index
    finally:
        lock.release()


def load_gallery(out_dir: str | Path) -> tuple[list[int], AdditivePerturbation, dict]:
    """``(class ids, one program with a perturbation per class, index)`` of a saved gallery."""
    index = read_index(out_dir)
    if not index["classes"]:
        raise FileNotFoundError(f"no gallery in {out_dir} (no {INDEX} with classes); build one with "
                                "`reprolab gallery`")
    ids = sorted(int(c) for c in index["classes"])
    singles = [load_program(Path(out_dir) / index["classes"][str(c)]["program"])[0] for c in ids]
    first = singles[0]
    for c, p in zip(ids, singles):
        if not isinstance(p, AdditivePerturbation) or len(p.w) != 1 or p.config["size"] != first.config["size"]:
            raise ValueError(f"the program of class {c} in {out_dir} is not one perturbation of "
                             f"{first.config['size']}px like the others; craft it again")
    program = AdditivePerturbation(first.config["size"], first.eps, first.norm, "projected", n=len(ids))
    with torch.no_grad():
        program.w.copy_(torch.cat([p.delta() for p in singles]))
    return ids, program, index
