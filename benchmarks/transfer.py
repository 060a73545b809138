"""Black-box transfer of the zoo's universal perturbations across the offline networks.

Rows: SGD-UAP, GD-UAP without data and GD-UAP with the data prior, each crafted on
efficientnet_lite0, efficientnet_lite2 and mobilenet_v2 (the zoo's entries), and random
+-eps noise. Columns: every offline network. Each cell is the fooling rate on the 250
held-out photos at that network's own input size (the perturbation is resized), with
its binomial standard error. The layout of the tables in Moosavi-Dezfooli et al. 2017
and Mopuri et al.'s GD-UAP paper; the book's results page prints it beside theirs.

    python benchmarks/transfer.py            # about 15 minutes on 2 CPU cores
    python benchmarks/transfer.py --quick    # 16 photos: smoke test of the script
"""

from __future__ import annotations

import argparse
import math

import reprolab
from reprolab import data, metrics, zoo

from common import write

METHODS = {"uap-sgd-linf": "SGD-UAP", "gduap-none": "GD-UAP, no data", "gduap-data": "GD-UAP, data prior"}
CRAFTED_ON = ("efficientnet_lite0", "efficientnet_lite2", "mobilenet_v2")
EPS = 10 / 255


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    device = reprolab.models.best_device()
    programs, rows = {}, []
    for prefix, method in METHODS.items():
        for net in CRAFTED_ON:
            name = f"{prefix}-{net}"
            if name in zoo.names():
                programs[name] = zoo.load(name, device=device)[0]
                rows.append({"program": name, "method": method, "crafted_on": net})
            else:
                print(f"{name}: not in the zoo, left out")
    programs["random noise"] = reprolab.AdditivePerturbation.random_noise(224, EPS).to(device)
    rows.append({"program": "random noise", "method": "random +-eps noise", "crafted_on": None})
    models = {n: reprolab.load_model(n, device=device) for n in reprolab.list_models("offline")}
    n = 16 if a.quick else 250

    def heldout_for(m):
        x, y = data.load_images(model=m, split="heldout")
        return x[:n], y[:n]

    names, cols, matrix = metrics.transfer_matrix(programs, models, heldout_for)
    for row, values in zip(rows, matrix.tolist()):
        row["fooling_rate"] = dict(zip(cols, values))
        row["stderr"] = {c: math.sqrt(v * (1 - v) / n) for c, v in zip(cols, values)}
        print(f"{row['program']:<34}" + "".join(f"{c}: {v:6.1%}  " for c, v in row["fooling_rate"].items()),
              flush=True)
    write("transfer-quick" if a.quick else "transfer",
          {"eps": EPS, "n": n, "photos": "held-out half of imagenet-sample", "targets": cols, "rows": rows})


if __name__ == "__main__":
    main()
