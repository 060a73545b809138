"""Does the no-data GD-UAP on efficientnet_lite0 get stronger with random views of the
perturbed input (``jitter``), more steps, a cosine learning rate, another layer set or
a smaller step? Each variant is measured on the 250 held-out photos (L-inf 10/255); the
range prior is rerun with the cosine schedule.

    python benchmarks/datafree_sweep.py      # about 15 minutes on 2 CPU cores
"""

from __future__ import annotations

import time

import reprolab
from reprolab import data, datafree

from common import write

EPS = 10 / 255
VARIANTS = [
    dict(steps=300, schedule="cosine", jitter=0.5, batch_size=8),
    dict(steps=300, schedule="cosine", jitter=0.25, batch_size=8),
    dict(steps=300, schedule="cosine"),
    dict(steps=300, schedule="cosine", seed=1),
    dict(steps=300, schedule="cosine", lr=EPS / 10),
    dict(steps=300, schedule="cosine", layers="conv"),
    dict(steps=1000, schedule="constant"),
    dict(steps=1000, schedule="cosine"),
    dict(steps=1000, schedule="cosine", layers="conv"),
    dict(steps=3000, schedule="cosine"),
    dict(steps=300, schedule="cosine", prior="range", batch_size=8),
]


def main():
    model = reprolab.load_model("efficientnet_lite0")
    held_x, held_y = data.load_images(size=model.input_size, crop=model.crop, split="heldout")
    clean = reprolab.predict(model, held_x)
    runs = []
    for variant in VARIANTS:
        kw = dict(variant)
        prior = kw.pop("prior", "none")
        if kw.get("layers") == "conv":
            kw["layers"] = model.conv_layers()
        t = time.perf_counter()
        program, _ = datafree.datafree_uap(model, prior, None, EPS, progress=False, **kw)
        seconds = time.perf_counter() - t
        m = reprolab.evaluate_perturbation(model, program, held_x, held_y, clean=clean)
        runs.append({"prior": prior, **{k: v for k, v in variant.items() if k != "prior"}, "seconds": round(seconds, 1),
                     "saturation": datafree.saturation(program), **m})
        print(f"{runs[-1]}", flush=True)
        write("datafree-sweep", {"model": model.name, "eps": EPS, "runs": runs})


if __name__ == "__main__":
    main()
