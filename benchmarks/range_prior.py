"""Why GD-UAP's range prior did worse than no data on efficientnet_lite0, and the fix.

Mopuri et al.'s reference code does not feed the network raw per-pixel Gaussian noise:
it draws one 500 px noise image and puts crops of it through the views of its data
prior (a resize to a random scale, a flip, a blur half the time) and the evaluation
resize. What reaches the network is smooth, low-contrast noise. This script crafts,
for three seeds, the range prior both ways and the no-data perturbation, 300 steps of
8 at L-inf 10/255 on efficientnet_lite0, and measures each on the 250 crafting photos
(never used to craft here: the range and no-data priors see no photo) and the 250
held-out ones.

    python benchmarks/range_prior.py     # about 15 minutes on 2 CPU cores
"""

from __future__ import annotations

import math
import time

import torch

import reprolab
from reprolab import data, datafree, metrics

from common import write


def main():
    device = reprolab.models.best_device()
    model = reprolab.load_model("efficientnet_lite0", device=device)
    craft_x, _ = data.load_images(model=model, split="craft")
    held_x, held_y = data.load_images(model=model, split="heldout")
    clean_craft, clean_held = reprolab.predict(model, craft_x), reprolab.predict(model, held_x)
    variants = {"range, noise as the reference code sees it": lambda: "range",
                "range, raw per-pixel noise": lambda: datafree.GaussianImages(224, 8, device, like_photos=False),
                "no data": lambda: "none"}
    runs = []
    for seed in (0, 1, 2):
        for name, prior in variants.items():
            torch.manual_seed(seed)
            t = time.perf_counter()
            program, _ = datafree.datafree_uap(model, prior(), eps=10 / 255, steps=300, batch_size=8, seed=seed,
                                               progress=False)
            craft = metrics.fooling_rate(clean_craft, reprolab.predict(model, craft_x, program))
            held = metrics.fooling_rate(clean_held, reprolab.predict(model, held_x, program))
            runs.append({"variant": name, "seed": seed, "craft_fooling_rate": craft, "heldout_fooling_rate": held,
                         "seconds": round(time.perf_counter() - t, 1)})
            print(f"seed {seed}  {name:<44} crafting photos {craft:.1%}  held-out {held:.1%}", flush=True)
    summary = {}
    for name in variants:
        rates = [r["heldout_fooling_rate"] for r in runs if r["variant"] == name]
        mean = sum(rates) / len(rates)
        sd = math.sqrt(sum((r - mean) ** 2 for r in rates) / (len(rates) - 1))
        summary[name] = {"heldout_mean": mean, "heldout_seed_sd": sd, "n": len(held_y)}
        print(f"{name:<44} held-out mean {mean:.1%} (seed sd {sd:.1%})")
    write("range-prior", {"model": model.name, "eps": 10 / 255, "steps": 300, "batch_size": 8, "runs": runs,
                          "summary": summary})


if __name__ == "__main__":
    main()
