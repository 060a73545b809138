"""Targeted universal images and the diagnostic gallery (seed method 3).

For a target class, one change ``delta = eps * tanh(w)`` that, added to almost any
image, makes the network answer the target. Random flips, blurs and resized crops
between the changed image and the network (:class:`~reprolab.augment.RandomViews`)
stop the optimiser from exploiting pixel-exact tricks, and what is left looks like
what the network has learned to associate with the class.

Many classes are crafted in one optimisation: a program with ``n`` perturbations
pairs every image of the batch with every one of them.
"""

from __future__ import annotations

import json
import difflib
from pathlib import Path

import torch

from . import distributed
from .artifacts import atomic_write
from .augment import RandomViews
from .metrics import targeted_success
from .models import FrozenClassifier
from .objectives import Targeted
from .plots import render_change
from .programs import AdditivePerturbation, check_eps, load_program, save_program
from .train import History, TensorBatches, fit, progress_bar

INDEX = "index.json"


def gallery_views(scale: tuple[float, float] = (0.7, 1.0), blur: float = 1.0) -> RandomViews:
    """The augmentations of the gallery: resized crops (``scale`` of the area), flips, blur."""
    return RandomViews(scale=scale, flip=0.5, blur=blur)


def targeted_uap(model: FrozenClassifier, x: torch.Tensor, targets: list[int], eps: float = 64 / 255,
                 steps: int = 200, batch_size: int = 4, lr: float = 0.1, augment: bool = True,
                 seed: int = 0, progress: bool = True, **fit_kwargs) -> tuple[AdditivePerturbation, History]:
    """Craft one targeted universal perturbation per class in ``targets``, all at once.

    Args:
        x: crafting images ``(N, 3, S, S)``; their labels are not needed.
        targets: class indices, one perturbation each.
        eps: L-inf bound, ``delta = eps * tanh(w)``. The default, 64/255, is visible on
            purpose (as in Nozdryn-Plotnicki 2018); at 32/255 the views make the targets
            far harder to reach.
        batch_size: images per step, shared by all targets (the model sees
            ``len(targets) * batch_size`` images per step).
        lr: Adam step on ``w`` (tanh space).
        augment: random views between the changed image and the network.
        fit_kwargs: passed to :func:`reprolab.fit`. Its ``micro_batch`` defaults to 1 on a
            CPU (one photo with every target per forward/backward pass, the same update)
            and to the whole batch elsewhere: one photo a pass is the faster choice on a
            few CPU cores and the slower one on a GPU (``benchmarks/harness.py``; the
            book's results page has the timings).

    Returns:
        ``(program, history)``: ``program.delta()[k]`` is the change for ``targets[k]``.
    """
    targets = [int(t) for t in targets]
    bad = [t for t in targets if not 0 <= t < model.num_classes]
    if bad:
        raise ValueError(f"class ids {bad} are not in [0, {model.num_classes}); see model.class_names")
    device = model.mean.device
    program = AdditivePerturbation(x.shape[-1], check_eps(eps), n=len(targets)).to(device)
    batches = TensorBatches(x, torch.zeros(len(x), dtype=torch.long), batch_size, seed=seed, device=device)
    objective = Targeted(targets, views=gallery_views() if augment else None)
    fit_kwargs.setdefault("micro_batch", 1 if device.type == "cpu" else None)
    history = fit(program, model, objective, batches, steps=steps, lr=lr, seed=seed, progress=progress,
                  desc=f"targeted x{len(targets)}", **fit_kwargs)
    return program, history


def parse_classes(spec: str | list, class_names: list[str]) -> list[int]:
    """Class ids from ``"all"``, ids or names (a list, or comma-separated), or a file of them.

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
            items = path.read_text().splitlines() if path.suffix in (".txt", ".csv") else spec.split(",")
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
        fix = (f"delete it and its .safetensors and .png, then rerun `reprolab gallery` with the same settings "
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


def build_gallery(model: FrozenClassifier, x: torch.Tensor, classes: list[int], out_dir: str | Path,
                  eps: float = 64 / 255, steps: int = 200, batch_size: int = 4, classes_per_run: int = 10,
                  heldout: torch.Tensor | None = None, progress: bool = True, **kwargs) -> dict:
    """Craft (or resume) a gallery: a PNG, a program and an entry per class, plus ``index.json``.

    Classes already finished are skipped, so a stopped run picks up where it was. Each
    class's files are written atomically, its ``class_NNNN.json`` entry last. Under
    ``torchrun`` every rank crafts its share of the runs of ``classes_per_run`` classes
    into the same folder (no gradient exchange is needed between classes).

    Args:
        x: crafting images; heldout: images to measure ``target_success`` on.
        classes_per_run: classes crafted together in one optimisation.
        kwargs: passed to :func:`targeted_uap` (lr, augment, seed, ...).

    Returns:
        the index (also in ``out_dir/index.json``).
    """
    out_dir = Path(out_dir)
    index = read_index(out_dir)
    settings = {"model": model.name, "eps": eps, "steps": steps, "batch_size": batch_size}
    if index["classes"] and index.get("settings", settings) != settings:
        raise ValueError(f"{out_dir} holds a gallery made with {index['settings']}; "
                         f"use another --out folder for {settings}")
    todo = [c for c in classes if str(c) not in index["classes"]]
    runs = [todo[i:i + classes_per_run] for i in range(0, len(todo), classes_per_run)]
    mine = runs[distributed.rank()::distributed.world_size()]
    if distributed.rank() == 0:
        _write_json(out_dir / INDEX, {**index, "settings": settings})
    bar = progress_bar(sum(map(len, mine)), 0, progress and distributed.rank() == 0, "gallery classes")
    for chunk in mine:
        program, _ = targeted_uap(model, x, chunk, eps, steps, batch_size, progress=False,
                                  data_parallel=False, **kwargs)
        rates = targeted_success(model, program, heldout, chunk) if heldout is not None else None
        for k, c in enumerate(chunk):
            stem = f"class_{c:04d}"
            entry = {"id": c, "name": model.class_names[c], "png": f"{stem}.png", "program": f"{stem}.safetensors"}
            if rates is not None:
                entry.update(target_success=rates["per_class"][k], target_prob=rates["per_class_prob"][k],
                             heldout_images=len(heldout))
            save_program(out_dir / entry["program"], program.select(k), target=c, **settings)
            atomic_write(out_dir / entry["png"], lambda tmp, k=k: render_change(program.delta()[k]).save(tmp, format="PNG"))
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
