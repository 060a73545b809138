"""Targeted universal images on efficientnet_lite0: held-out success and gallery throughput.

Ten fixed target classes from Nozdryn-Plotnicki (2018), crafted together on the 250 crafting
photos (L-inf eps, tanh parametrisation, flips + blur + resized crops between the
changed photo and the network), measured on the 250 held-out photos; then the same
without augmentations. Throughput: classes per minute of crafting, and the time the
1000-class gallery would take at that rate.

    python benchmarks/gallery.py             # full run (about 30 minutes on 2 CPU cores)
    python benchmarks/gallery.py --quick     # a minute: smoke test of the harness
"""

from __future__ import annotations

import argparse
import time

import reprolab
from reprolab import data

from common import RESULTS, write

TARGETS = [33, 34, 78, 96, 288, 291, 292, 664, 670, 978]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--eps", type=float, default=64 / 255)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=4)
    a = p.parse_args()
    steps, targets = (5, TARGETS[:2]) if a.quick else (a.steps, TARGETS)
    model = reprolab.load_model("efficientnet_lite0")
    craft, _ = data.load_images(model=model, split="craft")
    held, _ = data.load_images(model=model, split="heldout")
    if a.quick:
        craft, held = craft[:16], held[:16]
    runs = []
    for augment in (True, False):
        t = time.perf_counter()
        program, history = reprolab.uap.targeted_uap(model, craft, targets, a.eps, steps=steps, batch_size=a.batch_size,
                                                augment=augment, progress=False, log_every=max(1, steps // 10))
        seconds = time.perf_counter() - t
        r = reprolab.targeted_success(model, program, held, targets)
        per_min = len(targets) / (seconds / 60)
        runs.append({"augment": augment, "steps": steps, "batch_size": a.batch_size, "seconds": round(seconds, 1),
                     "classes_per_minute": round(per_min, 2), "hours_for_1000_classes": round(1000 / per_min / 60, 1),
                     "target_success": r["target_success"], "target_prob": r["target_prob"],
                     "per_class": dict(zip((model.class_names[c] for c in targets), r["per_class"])),
                     "train_target_rate": history.metrics["target_rate"]})
        print(f"augment={augment}: held-out target success {r['target_success']:.3f} "
              f"(prob {r['target_prob']:.2f}), {seconds:.0f} s, {per_min:.2f} classes/min", flush=True)
        if augment:
            reprolab.save_program(RESULTS / f"targeted-{model.name}.safetensors", program, model=model.name,
                                  targets=targets, eps=a.eps, steps=steps)
        write("gallery-quick" if a.quick else "gallery",
              {"model": model.name, "eps": a.eps, "targets": targets, "heldout_images": len(held), "runs": runs})


if __name__ == "__main__":
    main()
