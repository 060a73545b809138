"""The zoo's recipes: remake any entry of ``reprolab.zoo`` from scratch, then publish it.

Every entry is one ``reprolab`` command (the recipe). ``craft`` runs it on the best
device into ``benchmarks/results/zoo/`` (ignored by git; an entry already crafted is
skipped, galleries resume per class); ``publish`` stores a float16 copy in
``reprolab/zoo/``, measures it with the same code as ``reprolab evaluate`` (float32 and
float16 side by side: the copy must not move the metric by more than 0.2 points, else it
is kept in float32) and records settings, metrics, command and provenance in the manifest.

    python benchmarks/zoo.py list                                  # recipes and their cost
    python benchmarks/zoo.py craft --only uap-sgd-l2-efficientnet_lite0
    python benchmarks/zoo.py publish --only uap-sgd-l2-efficientnet_lite0
    python benchmarks/zoo.py publish --only NAME --from FILE       # publish a file made elsewhere
    python benchmarks/zoo.py log-part --only NAME --started 2026-12-02T16:38:03Z --commit 3ac9495 [--command ...]

A gallery crafted in parts is published part by part: a part's classes are added to those
published already (same settings required; ``--replace`` starts over), and the entry
records each part's command, commit, device and time under ``parts``. A folder resumed
across parts publishes only its classes not yet published, so each part's time stays
with the classes it crafted. ``craft`` writes the part's log (``zoo/NAME.json``); a part
run by hand (``reprolab gallery ... --out`` into the same folder, stopped between runs of
classes) gets it from ``log-part``: its new classes and the time from ``--started`` to the
last one saved.

Entries sized for a GPU say so: ``craft`` refuses them on a CPU unless given ``--anyway``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch

from common import RESULTS, device_name, provenance

WORK = RESULTS / "zoo"
L0 = "efficientnet_lite0"
L2 = "efficientnet_lite2"
MV2 = "mobilenet_v2"
SAMPLE = "imagenet-sample, held-out half (250 photos, never used for crafting; data.split_indices seed 0)"
PHOTOS = {"reprogram": {"mnist": "MNIST: the last 2,000 of the official test set (never trained on)",
                        "squares": "counting squares: 2,000 images of layouts never trained on"}}


@dataclass
class Recipe:
    kind: str
    args: list[str]
    cpu_minutes: float  # measured or estimated on the 2-core CPU
    gpu_seconds: float | None = None  # on an H100, where measured
    gpu_only: bool = False  # too slow for a CPU session
    # an artifact made before the zoo existed, by a benchmark script with the same settings
    source: dict = field(default_factory=dict)
    pictures: bool = False  # a gallery kept as one JPEG a class (zoo.write_pictures), not as programs

    def where(self) -> str:
        """Where to run it: the GPU time where one was measured, else 'GPU advised' or 'CPU'."""
        if self.gpu_seconds is not None:
            return f"GPU: {self.gpu_seconds:.0f} s on an H100"
        return "GPU advised, not timed on one" if self.gpu_only else "CPU"

    @property
    def model(self) -> str:
        return self.args[self.args.index("--model") + 1]

    def command(self, out: str) -> str:
        return " ".join(["reprolab", *self.args, "--out", out])

    def remake(self, name: str) -> str:
        """The command that remakes entry ``name`` (a gallery is a folder, then published as one file)."""
        return self.command(f"{name}/" if self.kind == "gallery" else f"{name}.safetensors")


def _uap(model: str, norm: str, eps: str, steps: int, batch: int, cpu: float, loss: str = "clamped_ce",
         **kw) -> Recipe:
    return Recipe("uap", ["uap", "--model", model, "--method", "sgd", "--norm", norm, "--eps", eps, "--steps",
                          str(steps), "--batch-size", str(batch), "--schedule", "cosine", "--loss", loss], cpu, **kw)


def _reprogram(task: str, mapping: str, steps: int, side: int, gpu: float, source: str, results: str) -> Recipe:
    return Recipe("reprogram", ["reprogram", "--model", L0, "--task", task, "--mapping", mapping, "--steps", str(steps),
                                "--batch-size", "128", "--size", "128", "--image-size", str(side), "--lr", "0.05",
                                "--schedule", "cosine"],
                  cpu_minutes=steps * 128 / 32 * 0.66 / 60, gpu_seconds=gpu, gpu_only=True,
                  source={"file": source, "results": results})


def _datafree(prior: str, cpu: float, model: str = L0, steps: int = 300, schedule: str = "constant") -> Recipe:
    made_before = model == L0 and (steps, schedule) == (300, "constant")  # by benchmarks/datafree.py
    source = {"file": f"datafree-{prior}-{L0}.safetensors", "results": "datafree-cpu-2core.json"} if made_before else {}
    extra = ["--schedule", schedule] if schedule != "constant" else []
    return Recipe("datafree", ["datafree", "--model", model, "--prior", prior, "--eps", "10/255", "--steps", str(steps),
                               "--batch-size", "8", *extra], cpu, source=source)


WRITEUP_CLASSES = "33,34,78,96,288,291,292,664,670,978"  # turtles, tick, toucan, big cats, monitor, scooter, seashore
RECIPES: dict[str, Recipe] = {
    # the setting benchmarks/sweep.py picked on validation photos (margin loss, 2,000 steps of 32;
    # 89.3 % held-out over three seeds there)
    f"uap-sgd-linf-{L0}": _uap(L0, "inf", "10/255", 2000, 32, 65, loss="margin", gpu_seconds=60, gpu_only=True),
    f"uap-sgd-l2-{L0}": _uap(L0, "2", "2000/255", 400, 16, 9),
    "uap-sgd-linf-efficientnet_lite1": _uap("efficientnet_lite1", "inf", "10/255", 200, 16, 6),
    "uap-sgd-linf-efficientnet_lite2": _uap("efficientnet_lite2", "inf", "10/255", 200, 16, 8),
    # the paper's stopping rule: passes until the crafting fooling rate reaches 80 % or stops rising
    f"uap-deepfool-linf-{L0}": Recipe("uap", ["uap", "--model", L0, "--method", "deepfool", "--norm", "inf",
                                              "--eps", "10/255", "--passes", "10"], 20),
    f"gduap-none-{L0}": _datafree("none", 0.3),
    f"gduap-range-{L0}": _datafree("range", 2),
    # the setting benchmarks/sweep.py picked on validation photos (87.6 % held-out over three seeds there,
    # against 86.0 % for 1,000 steps and 84.3 % for 300 steps at a constant rate)
    f"gduap-data-{L0}": _datafree("data", 39, steps=3000, schedule="cosine"),
    f"gduap-none-{L2}": _datafree("none", 0.6, L2),
    f"gduap-data-{L2}": _datafree("data", 4, L2),
    # a second architecture family, offline (torchvision's file from PyPI): the transfer tables
    f"uap-sgd-linf-{MV2}": _uap(MV2, "inf", "10/255", 200, 16, 5),
    f"gduap-none-{MV2}": _datafree("none", 0.3, MV2),
    f"gduap-range-{MV2}": _datafree("range", 2, MV2),
    f"gduap-data-{MV2}": _datafree("data", 2.2, MV2),
    f"reprogram-mnist-{L0}": _reprogram("mnist", "frequency", 6000, 32, 107,
                                        "reprogram-mnist-frequency-6000-32px-b128.safetensors",
                                        "reprogramming-gpu-NVIDIA-H100-80GB-HBM3.json"),
    f"reprogram-squares-{L0}": _reprogram("squares", "frequency", 8000, 36, 160,
                                          "reprogram-squares-frequency-8000-36px-b128.safetensors",
                                          "reprogramming-gpu-only-squares-frequency-NVIDIA-H100-80GB-HBM3.json"),
    f"reprogram-mnist-first-{L0}": _reprogram("mnist", "first", 2000, 32, 36,
                                              "reprogram-mnist-first-2000-32px-b128.safetensors",
                                              "reprogramming-gpu-NVIDIA-H100-80GB-HBM3.json"),
    f"reprogram-mnist-iterative-{L0}": _reprogram("mnist", "iterative", 2000, 32, 62,
                                                  "reprogram-mnist-iterative-2000-32px-b128.safetensors",
                                                  "reprogramming-gpu-only-mnist-iterative-NVIDIA-H100-80GB-HBM3.json"),
    f"targeted-writeup-{L0}": Recipe("gallery", ["gallery", "--model", L0, "--classes", WRITEUP_CLASSES, "--eps",
                                                 "64/255", "--steps", "200", "--batch-size", "4",
                                                 "--classes-per-run", "10"], 10.4,
                                     source={"file": f"targeted-{L0}.safetensors", "results": "gallery-cpu-2core.json"}),
    # the whole gallery (chapter 5's settings, learned as a spectrum: benchmarks/parametrization.py); 11.3 h on
    # 2 CPU cores (1.48 classes a minute over its ten parts), so it is crafted in parts (any --classes order;
    # benchmarks/gallery_order.txt visits every group early) and published as it grows
    **{f"gallery-{model}": Recipe("gallery", ["gallery", "--model", model, "--classes", "all", "--eps", "64/255",
                                              "--steps", "200", "--batch-size", "4", "--classes-per-run", "10",
                                              "--parametrization", "fourier", "--lr", "0.2"], 680,
                                  gpu_only=True, pictures=True)
       # mobilenet_v2's cost is lite0's measured one (its first part: 80 classes at 1.28 a minute)
       for model in (L0, MV2)},
}


def out_path(name: str) -> Path:
    return WORK / (name if RECIPES[name].kind == "gallery" else f"{name}.safetensors")


def craft(name: str, anyway: bool) -> None:
    recipe, out = RECIPES[name], out_path(name)
    if out.is_file():
        print(f"{name}: already crafted ({out}); delete it to craft again")
        return
    if recipe.gpu_only and not torch.cuda.is_available() and not anyway:
        raise SystemExit(f"{name} takes about {recipe.cpu_minutes / 60:.1f} h on a 2-core CPU "
                         f"({recipe.where()}); run it on a GPU, or pass --anyway")
    print(f"{name}: {recipe.command(str(out))}", flush=True)
    made_by = provenance()  # the code as it is when the run starts
    t = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "reprolab", *recipe.args, "--out", str(out), "--json"],
                         stdout=subprocess.PIPE, text=True)
    if run.returncode:
        raise SystemExit(f"{name}: the recipe failed (exit {run.returncode})")
    log = {**made_by, "command": recipe.command(out.name), "seconds": round(time.perf_counter() - t, 1),
           "result": json.loads(run.stdout.strip().splitlines()[-1])}
    (WORK / f"{name}.json").write_text(json.dumps(log, indent=2) + "\n")


def load_made(name: str, src: Path | None) -> tuple[object, dict, dict]:
    """``(program, artifact metadata, provenance)`` of a crafted entry."""
    from reprolab.gallery import load_gallery
    from reprolab.programs import load_program

    recipe = RECIPES[name]
    if src is None and recipe.source and not out_path(name).exists():
        src = RESULTS / recipe.source["file"]
    if src is not None:  # made before the zoo, by a benchmark script: its results file has the provenance
        results = json.loads((RESULTS / recipe.source["results"]).read_text()) if recipe.source else {}
        prov = {k: results.get(k, "unknown") for k in ("command", "commit", "device", "torch")}
        prov["command"] = f"cd benchmarks && {prov['command']}"
    else:
        src = out_path(name)
        log = json.loads((WORK / f"{name}.json").read_text())
        prov = {k: log[k] for k in ("commit", "device", "torch")} | {"command": log["command"],
                                                                     "seconds": log["result"].get("seconds")}
    if src.is_dir():
        ids, program, index = load_gallery(src)
        return program, {"model": index["settings"]["model"], "targets": ids, **index["settings"]}, prov
    program, meta = load_program(src)
    prov.setdefault("seconds", meta.get("seconds"))
    return program, meta, prov


# what an artifact's metadata says about how it was made (the rest are its own metrics)
SETTING_KEYS = ("method", "prior", "stat", "jitter", "steps", "step", "batch_size", "task", "mapping", "eps",
                "targets", "saturation")


def settings_of(program, meta: dict) -> dict:
    return {"program": type(program).__name__, **program.config, **{k: meta[k] for k in SETTING_KEYS if k in meta}}


def earlier_parts(name: str, ids: list[int], settings: dict, n: int, root: Path | None = None
                  ) -> tuple[list[dict], dict[int, bytes], list[dict]]:
    """What a published gallery keeps when a part crafting ``ids`` is added to it.

    ``(records, pictures, parts)`` of its other classes: their per-class records, JPEGs,
    and the parts that crafted them (each with its command, commit, device and class ids).
    Empty when nothing is published yet; a gallery made with other settings or measured on
    another number of photos is refused (publish the new part with ``--replace``).
    """
    from reprolab import zoo

    root = root or zoo.ROOT
    if name not in zoo.names(root=root):
        return [], {}, []
    old = zoo.info(name, root)
    was = {k: v for k, v in old["settings"].items() if k != "targets"}
    now = {k: v for k, v in settings.items() if k != "targets"}
    if was != now or old["metrics"]["n"] != n:
        diffs = [f"{k} {was.get(k)!r} there, {now.get(k)!r} now" for k in sorted(set(was) | set(now))
                 if was.get(k) != now.get(k)] + ([f"n {old['metrics']['n']} there, {n} now"]
                                                  if old["metrics"]["n"] != n else [])
        raise SystemExit(f"{name}: the published gallery was made otherwise ({'; '.join(diffs)}); its classes "
                         "cannot be kept beside the new ones. Pass --replace to publish the new part alone")
    new = set(ids)
    files = zoo.pictures(name, root)
    records = [r for r in old["per_class"] if r["id"] not in new]
    parts = old.get("parts") or [{"classes": [r["id"] for r in old["per_class"]],
                                  **{k: old[k] for k in ("crafted_with", "commit", "device", "torch")}}]
    parts = [{**p, "classes": [c for c in p["classes"] if c not in new]} for p in parts]
    return records, {r["id"]: files[r["id"]].read_bytes() for r in records}, [p for p in parts if p["classes"]]


def unpublished(name: str, ids: list[int], records: list[dict], root: Path | None = None) -> list[int]:
    """The classes of a gallery folder that a new part adds: those not published yet.

    A folder resumed across parts still holds the classes published from it before; they
    stay in their own part (with its time). A class that is published but whose held-out
    rate in the folder differs was crafted again since: refused, not silently dropped.
    """
    from reprolab import zoo

    root = root or zoo.ROOT
    if name not in zoo.names(root=root):
        return list(ids)
    published = {r["id"]: r["target_success"] for r in zoo.info(name, root)["per_class"]}
    again = [c for c, r in zip(ids, records) if c in published and abs(published[c] - r["target_success"]) > 1e-6]
    if again:
        raise SystemExit(f"{name}: classes {again[:5]} are published with other held-out rates than the folder's "
                         "(crafted again since); publish the folder with --replace, or craft into a fresh folder")
    return [c for c in ids if c not in published]


def log_part(name: str, src: Path | None, started: str, commit: str, command: str | None = None,
             root: Path | None = None) -> dict:
    """Log a gallery part crafted by hand into the folder ``src``: ``zoo/NAME.json``, which ``publish`` reads.

    The part is the folder's classes not published yet; its time runs from ``started``
    (ISO 8601, when the crafting command was started) to the last of those classes saved;
    ``command`` is the one that ran (default: the recipe's).
    """
    from reprolab.artifacts import atomic_write
    from reprolab.gallery import read_index

    src = src or out_path(name)
    records = list(read_index(src)["classes"].values())
    new = set(unpublished(name, [r["id"] for r in records], records, root))
    if not new:
        raise SystemExit(f"{name}: every class in {src} is published already; nothing to log")
    start = datetime.fromisoformat(started.replace("Z", "+00:00"))
    if start.tzinfo is None:
        raise SystemExit(f"--started {started!r} has no time zone; give it in UTC, e.g. 2026-12-02T16:38:03Z")
    saved = {c: (src / f"class_{c:04d}.json").stat().st_mtime for c in new}
    earlier = sorted(c for c, t in saved.items() if t < start.timestamp())
    if earlier:  # crafted by an earlier run, never published: its time is not this part's
        raise SystemExit(f"{name}: classes {earlier[:5]} in {src} were saved before --started {started}; publish "
                         "the part that crafted them first, or check the time")
    seconds = round(max(saved.values()) - start.timestamp())
    before = len(records) - len(new)
    log = {"commit": commit, "device": device_name(), "torch": torch.__version__,
           "command": (command or RECIPES[name].command(f"{src.name}/")) + (
               f" (resumed into its folder: the {before} class{'' if before == 1 else 'es'} published before "
               f"{'was' if before == 1 else 'were'} skipped)"
               if before else ""),
           "started": start.isoformat(), "seconds": seconds, "result": {"classes": len(new)}}
    path = WORK / f"{name}.json"
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(log, indent=2) + "\n"))
    print(f"{name}: part of {len(new)} classes in {seconds} s ({len(new) / seconds * 60:.2f} classes a minute) "
          f"logged in {path}")
    return log


def publish_pictures(name: str, src: Path | None, replace: bool = False) -> dict:
    """A gallery kept as pictures: the per-class held-out rates its crafting runs measured, one JPEG a class.

    The classes of ``src`` are added to those published already (a gallery crafted in
    parts); ``replace`` publishes ``src``'s classes alone.
    """
    from reprolab import plots, zoo
    from reprolab.gallery import load_gallery

    recipe = RECIPES[name]
    src = src or out_path(name)
    ids, program, index = load_gallery(src)
    records = [index["classes"][str(c)] for c in ids]
    unmeasured = [c for c, r in zip(ids, records) if "target_success" not in r]
    if unmeasured:
        raise SystemExit(f"{name}: classes {unmeasured[:5]} have no held-out rate; craft them with held-out photos")
    deltas = program.delta().detach()
    if not replace:  # a resumed folder: only its classes not yet published form the new part
        new = set(unpublished(name, ids, records))
        if not new:
            raise SystemExit(f"{name}: every class in {src} is published already; nothing to add")
        keep = [k for k, c in enumerate(ids) if c in new]
        ids, records, deltas = [ids[k] for k in keep], [records[k] for k in keep], deltas[keep]
    per_class = [{"id": c, "name": r["name"], "target_success": r["target_success"], "target_prob": r["target_prob"],
                  "max_abs": round(float(deltas[k].abs().max()), 5)} for k, (c, r) in enumerate(zip(ids, records))]
    n = {r["heldout_images"] for r in records}
    if len(n) != 1:
        raise SystemExit(f"{name}: classes were measured on different numbers of photos ({sorted(n)})")
    settings = {k: v for k, v in index["settings"].items() if k != "crafting_images"}
    n = n.pop()
    log = WORK / f"{name}.json"  # written by `craft`; a gallery crafted in parts by hand gets one written too
    made = json.loads(log.read_text()) if log.is_file() else {**provenance(), "command": "unknown"}
    part = {"classes": ids, "crafted_with": made["command"], "commit": made["commit"], "device": made["device"],
            "torch": made["torch"], **({"seconds": made["seconds"]} if "seconds" in made else {})}
    kept, kept_pictures, parts = ([], {}, []) if replace else earlier_parts(name, ids, settings, n)
    per_class = sorted(kept + per_class, key=lambda r: r["id"])
    parts = parts + [part]
    entry = {
        "kind": "gallery", "model": recipe.model,
        "metrics": {"split": "heldout", "classes": len(per_class),
                    "target_success": sum(r["target_success"] for r in per_class) / len(per_class),
                    "target_prob": sum(r["target_prob"] for r in per_class) / len(per_class), "n": n},
        "per_class": per_class, "photos": SAMPLE, "settings": {**settings, "targets": [r["id"] for r in per_class]},
        "picture": "the change amplified to the full range (plots.change_picture): 0.5 + 0.5 * delta / max_abs, "
                   "224 px JPEG; per_class[k]['max_abs'] scales it back",
        "command": recipe.remake(name), "crafted_with": made["command"],
        # the parts' provenance, joined (each part's own is under "parts")
        **{k: ", ".join(dict.fromkeys(p[k] for p in parts)) for k in ("commit", "device", "torch")},
        "parts": parts, "cpu_minutes": round(recipe.cpu_minutes, 1), "gpu_seconds": recipe.gpu_seconds,
    }
    pictures = {**kept_pictures, **{c: plots.change_picture(deltas[k]) for k, c in enumerate(ids)}}
    stored = zoo.write_pictures(name, pictures, entry)
    print(f"{name}: {len(per_class)} classes as pictures ({len(ids)} from {src}, {len(kept)} kept), "
          f"{stored['bytes'] / 1e6:.2f} MB, mean held-out target success "
          f"{entry['metrics']['target_success']:.1%} (n = {n})")
    return stored


def publish(name: str, src: Path | None, replace: bool = False) -> dict:
    import reprolab
    from reprolab import metrics, zoo

    recipe = RECIPES[name]
    if recipe.pictures:
        return publish_pictures(name, src, replace)
    program, meta, prov = load_made(name, src)
    model = reprolab.load_model(recipe.model)
    program = program.to(model.device)
    full = metrics.evaluate_program(model, program, meta)
    half = type(program)(**program.config).to(model.device)
    half.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in zoo.half_copy(program).items()})
    small = metrics.evaluate_program(model, half, meta)
    keys = [k for k, v in full.items() if isinstance(v, float)]
    moved = max(abs(full[k] - small[k]) for k in keys)
    dtype = "float16" if moved <= 0.002 else "float32"
    kept = small if dtype == "float16" else full
    keep_meta = {k: v for k, v in meta.items() if k not in ("history", "program", "config")}
    entry = {
        "kind": recipe.kind, "model": recipe.model,
        "metrics": {k: v for k, v in kept.items() if k != "per_class"},
        "per_class": kept.get("per_class"),
        "metrics_float32": {k: full[k] for k in keys},
        "photos": PHOTOS.get(recipe.kind, {}).get(meta.get("task"), SAMPLE),
        "settings": settings_of(program, keep_meta),
        "command": recipe.remake(name),
        "crafted_with": prov["command"], "commit": prov["commit"], "device": prov["device"],
        "torch": prov["torch"], "crafting_seconds": prov.get("seconds"),
        "cpu_minutes": round(recipe.cpu_minutes, 1), "gpu_seconds": recipe.gpu_seconds,
        "evaluated": {"device": device_name(), "torch": torch.__version__, "commit": provenance()["commit"]},
    }
    if entry["per_class"] is None:
        del entry["per_class"]
    stored = zoo.write_entry(name, program, keep_meta, entry, dtype=dtype)
    print(f"{name}: {dtype}, {stored['bytes'] / 1e6:.2f} MB, {entry['metrics']} "
          f"(float32 -> float16 moved the metrics by at most {moved * 100:.2f} points)")
    return stored


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["list", "craft", "log-part", "publish"])
    p.add_argument("--only", default=None, help="entries, comma-separated (default: all)")
    p.add_argument("--from", dest="src", type=Path, default=None, help="publish: the artifact file or gallery folder")
    p.add_argument("--started", help="log-part: when the part's crafting command started (ISO 8601, UTC)")
    p.add_argument("--commit", help="log-part: the commit of the code that crafted the part")
    p.add_argument("--command", help="log-part: the crafting command, if not the recipe's (e.g. another --classes)")
    p.add_argument("--anyway", action="store_true", help="craft GPU-sized entries on a CPU too")
    p.add_argument("--replace", action="store_true",
                   help="publish: a gallery's new classes replace the published ones (default: added to them)")
    a = p.parse_args()
    names = a.only.split(",") if a.only else list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown entries {unknown}; `python benchmarks/zoo.py list` shows them")
    WORK.mkdir(parents=True, exist_ok=True)
    for name in names:
        r = RECIPES[name]
        if a.action == "list":
            print(f"{name:<44} {r.kind:<9} ~{r.cpu_minutes:.0f} min on 2 CPU cores ({r.where()})\n    {r.remake(name)}")
        elif a.action == "craft":
            craft(name, a.anyway)
        elif a.action == "log-part":
            if not (a.started and a.commit):
                raise SystemExit("log-part needs --started (when the crafting began) and --commit (its code)")
            log_part(name, a.src, a.started, a.commit, a.command)
        else:
            publish(name, a.src, a.replace)


if __name__ == "__main__":
    main()
