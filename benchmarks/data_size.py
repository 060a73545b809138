"""Held-out fooling rate against the number of crafting photos (the UAP paper's data-size figure).

DeepFool-UAP as the paper runs it (passes until the crafting fooling rate reaches 1 - delta = 0.8 or
stops rising, at most ``--passes``), with and without SGD-UAP's random views, and SGD-UAP
(its defaults: views, clamped cross-entropy) on the first 32, 64, 128 and 250 crafting photos of
the shared sample; every row is measured on the same 250 held-out photos, at L-inf 10/255.

    python benchmarks/data_size.py            # about 35 minutes on 2 CPU cores
    python benchmarks/data_size.py --quick    # a minute: smoke test of the script

Rows are written as they finish; a stopped run resumes where it was (delete the result file
to start over).
"""

from __future__ import annotations

import argparse

import torch

import reprolab
from reprolab import data, uap

from common import recorded_rows, write


def craft(model, method: str, x: torch.Tensor, eps: float, a) -> tuple[reprolab.AdditivePerturbation, dict]:
    if method == "sgd":
        program, h = uap.sgd_uap(model, x, eps, steps=a.sgd_steps, batch_size=16, schedule="cosine", progress=False)
        return program, {"steps": a.sgd_steps, "batch_size": 16, "seconds": round(h.seconds, 1)}
    program, h = uap.deepfool_uap(model, x, eps, max_passes=a.passes, augment=method == "deepfool+views",
                                  progress=False)
    return program, {"passes": len(h.steps), "crafting_fooling_rate": h.metrics["fooling_rate"],
                     "seconds": round(h.seconds, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--sizes", default="32,64,128,250")
    p.add_argument("--methods", default="sgd,deepfool,deepfool+views")
    p.add_argument("--passes", type=int, default=3, help="DeepFool-UAP's pass cap")
    p.add_argument("--sgd-steps", type=int, default=200)
    a = p.parse_args()
    eps = 10 / 255
    sizes = [4] if a.quick else [int(s) for s in a.sizes.split(",")]
    if a.quick:
        a.passes, a.sgd_steps = 1, 4
    model = reprolab.load_model(a.model, device=reprolab.models.best_device())
    craft_x, _ = data.load_images(model=model, split="craft")
    held_x, held_y = data.load_images(model=model, split="heldout")
    if a.quick:
        held_x, held_y = held_x[:16], held_y[:16]
    clean = reprolab.predict(model, held_x)
    noise = reprolab.evaluate_perturbation(model, reprolab.AdditivePerturbation.random_noise(model.input_size, eps).to(model.device),
                                           held_x, held_y, clean=clean)

    name = "data_size-quick" if a.quick else "data_size"
    rows = recorded_rows(name)
    done = {(r["method"], r["crafting_images"]) for r in rows}
    # cheapest first, so a stopped run has the whole of the small end
    for method in a.methods.split(","):
        for n in sizes:
            if (method, n) in done:
                continue
            print(f"{method} on {n} photos ...", flush=True)
            program, info = craft(model, method, craft_x[:n], eps, a)
            m = reprolab.evaluate_perturbation(model, program, held_x, held_y, clean=clean)
            rows.append({"method": method, "crafting_images": n, **info, **m})
            print(f"  held-out fooling {m['fooling_rate']:.1%} (error {m['error_rate']:.1%}) {info}", flush=True)
            write(name, {"model": a.model, "eps": eps, "norm": "inf", "heldout_images": len(held_y),
                         "noise": noise, "quick": a.quick, "rows": rows})


if __name__ == "__main__":
    main()
