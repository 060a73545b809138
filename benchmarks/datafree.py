"""Data-free universal perturbations (GD-UAP) on efficientnet_lite0: the three priors.

Each prior crafts an L-inf 10/255 perturbation; all are evaluated on the 250 held-out
photos of the shared sample (the data prior crafts on the other 250, without labels),
next to random +-eps noise. Also: FFF's statistic, the saturation-halving trick, and
no-data transfer across lite0/1/2.

    python benchmarks/datafree.py            # full run (about 12 minutes on 2 CPU cores)
    python benchmarks/datafree.py --quick    # a minute: smoke test of the harness
"""

from __future__ import annotations

import argparse
import time

import reprolab
from reprolab import data, datafree, metrics

from common import RESULTS, write


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    eps, steps, batch = 10 / 255, (10 if a.quick else 300), (4 if a.quick else 8)
    model = reprolab.load_model("efficientnet_lite0", device=reprolab.models.best_device())
    craft, _ = data.load_images(model=model, split="craft")
    held_x, held_y = data.load_images(model=model, split="heldout")
    if a.quick:
        craft, held_x, held_y = craft[:16], held_x[:32], held_y[:32]
    clean = reprolab.predict(model, held_x)
    runs = []

    def record(name, program, seconds, **extra):
        m = reprolab.evaluate_perturbation(model, program, held_x, held_y, clean=clean)
        runs.append({"name": name, "seconds": round(seconds, 1), **extra, **m})
        print(f"{name:<28} fooling {m['fooling_rate']:.3f}  error {m['error_rate']:.3f}  ({seconds:.0f} s)", flush=True)
        write("datafree-quick" if a.quick else "datafree", {"model": model.name, "eps": eps, "runs": runs})

    noise = reprolab.AdditivePerturbation.random_noise(224, eps)
    record("random +-eps noise", noise, 0.0)
    variants = [("none", {}), ("range", {}), ("data", {}), ("none", {"stat": "mean_abs"}), ("none", {"halve_at": 0.8})]
    for prior, kw in variants:
        t = time.perf_counter()
        program, history = datafree.datafree_uap(model, prior, craft if prior == "data" else None, eps,
                                                 steps=steps, batch_size=batch, progress=False, **kw)
        name = f"GD-UAP {prior}" + "".join(f" {k}={v}" for k, v in kw.items())
        record(name, program, time.perf_counter() - t, prior=prior, steps=steps, batch_size=batch,
               saturation=datafree.saturation(program), **kw)
        if not kw:
            reprolab.save_program(RESULTS / f"datafree-{prior}-{model.name}.safetensors", program,
                                  model=model.name, **runs[-1])

    # black-box transfer of the no-data perturbation across the offline zoo
    zoo = {n: reprolab.load_model(n) for n in reprolab.list_models("offline")}
    programs = {}
    for name, m in zoo.items():
        programs[name], _ = datafree.datafree_uap(m, "none", eps=eps, steps=steps, progress=False)

    def heldout_for(m):
        x, y = data.load_images(model=m, split="heldout")
        return (x[:32], y[:32]) if a.quick else (x, y)

    rows, cols, matrix = metrics.transfer_matrix(programs, zoo, heldout_for)
    print("no-data transfer (rows: crafted on, columns: evaluated on)\n", matrix)
    write("datafree-quick" if a.quick else "datafree", {"model": model.name, "eps": eps, "runs": runs,
                                                         "transfer": {"rows": rows, "cols": cols,
                                                                      "fooling_rate": matrix.tolist()}})


if __name__ == "__main__":
    main()
