"""Pixels or a spectrum: the gallery's targeted changes learned in two parametrisations.

``tanh`` learns each pixel (``delta = eps * tanh(w)``, the gallery's default); ``fourier``
learns a 1/f-scaled spectrum in decorrelated colours (feature visualisation's
parametrisation, Olah et al. 2017), still ``eps * tanh(...)``. Both craft the same
classes with chapter 5's settings (L-inf 64/255, 200 steps of 4 photos, the flip/blur/crop
views, Adam 0.1) and are measured on the 250 held-out photos: target success, mean target
probability, the share of each change's energy a blur with sigma 1 removes (near 0 smooth,
near 1 pixel noise) and the share of values at the bound. A figure puts the pictures side
by side.

    python benchmarks/parametrization.py            # about 4 minutes on 2 CPU cores
    python benchmarks/parametrization.py --params fourier --lr 0.2   # another setting, added to the rows
    python benchmarks/parametrization.py --quick    # seconds: smoke test of the script

Settings are chosen by the success on the crafting photos (``crafting_success``), never by
the held-out rate. Results: ``results/parametrization-<device>.json`` (rows of earlier runs
are kept; a setting already measured is skipped) and ``.png`` (this run's pictures).
"""

from __future__ import annotations

import argparse

import torch

import reprolab
from reprolab import data, datafree, metrics, plots, uap

from common import recorded_rows, result_path, write

CLASSES = [664, 978, 96, 33]  # monitor, seashore, toucan, loggerhead: text, texture, bird, shell


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--classes", default=",".join(map(str, CLASSES)))
    p.add_argument("--params", default="tanh,fourier", help="parametrizations, comma-separated")
    p.add_argument("--lr", type=float, default=0.1, help="Adam's step (the gallery's: 0.1)")
    a = p.parse_args()
    classes = [int(c) for c in a.classes.split(",")]
    eps, steps = 64 / 255, 4 if a.quick else a.steps
    classes = classes[:2] if a.quick else classes
    model = reprolab.load_model(a.model, device=reprolab.models.best_device())
    craft_x, _ = data.load_images(model=model, split="craft")
    held_x, _ = data.load_images(model=model, split="heldout")
    held_x = held_x[:16] if a.quick else held_x

    name = "parametrization-quick" if a.quick else "parametrization"
    rows = recorded_rows(name)
    done = {(r["parametrization"], r["lr"], r["steps"], tuple(r["classes"])) for r in rows}
    ran, pictures = [], []
    for param in a.params.split(","):
        if (param, a.lr, steps, tuple(classes)) in done:
            print(f"{param} at lr {a.lr}, {steps} steps: measured already")
            continue
        print(f"{param} at lr {a.lr}: {len(classes)} classes, {steps} steps ...", flush=True)
        program, h = uap.targeted_uap(model, craft_x, classes, eps, steps=steps, batch_size=4, lr=a.lr,
                                      parametrization=param, progress=False)
        r = reprolab.targeted_success(model, program, held_x, classes)
        crafting = reprolab.targeted_success(model, program, craft_x, classes)["target_success"]
        delta = program.delta().detach().cpu()
        hf = metrics.high_frequency_share(delta)
        ran.append({"parametrization": param, "lr": a.lr, "steps": steps, "classes": classes,
                    "crafting_success": crafting, "target_success": r["target_success"],
                    "target_prob": r["target_prob"], "per_class": r["per_class"],
                    "high_frequency_share": sum(hf) / len(hf), "per_class_high_frequency": hf,
                    "saturation": datafree.saturation(program), "seconds": round(h.seconds, 1)})
        print(f"  crafting success {crafting:.1%}, held-out {r['target_success']:.1%}, "
              f"high-frequency share {sum(hf) / len(hf):.2f}, {h.seconds:.0f} s", flush=True)
        pictures.append(plots.amplify(delta))
        write(name, {"model": a.model, "eps": eps, "batch_size": 4, "heldout_images": len(held_x),
                     "quick": a.quick, "rows": rows + ran})
    if ran:
        titles = [f"{model.class_names[c][:16]}\n{row['parametrization']} lr {row['lr']} {s:.0%}"
                  for row in ran for c, s in zip(classes, row["per_class"])]
        fig = plots.show_images(torch.cat(pictures), titles, ncols=len(classes), size=3)
        fig.savefig(result_path(name).with_suffix(".png"), dpi=80, bbox_inches="tight")


if __name__ == "__main__":
    main()
