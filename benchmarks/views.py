"""Random views alone: three ways to give every image of a batch its own crop, flip and blur.

Forward and backward (the gradient to the images, as when the views sit between a
perturbation and the network) of the gallery's views (crop of 70-100 % of the area,
flip, blur sigma up to 1), timed against the naive per-image loop in the same run:

- ``loop``: torchvision's transforms, one call per image (they draw one set of
  parameters per call);
- ``grid``: one ``affine_grid`` + ``grid_sample`` for the crops and flips, one grouped
  convolution (a kernel per image) for the blur;
- ``matmul``: what :func:`reprolab.augment.random_views` does: crop, resize, flip and
  blur are linear and separable, so each view is ``Ry @ x @ Rx.T``, two batched
  matrix products.

    python benchmarks/views.py            # about 30 s on 2 CPU cores
    python benchmarks/views.py --quick    # a few seconds (tested)

Results: ``results/views-<device>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from any folder
from common import write  # noqa: E402
from harness import LoopViews  # noqa: E402

from reprolab.augment import crop_boxes, random_views  # noqa: E402

SCALE, FLIP, BLUR = (0.7, 1.0), 0.5, 1.0  # reprolab.uap.gallery_views()


loop_views = LoopViews(SCALE, FLIP, BLUR)  # what harness.py's naive loops use


def grid_views(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    cx, cy, bw, bh = crop_boxes(n, SCALE, device=x.device).unbind(1)
    sign = torch.where(torch.rand(n, device=x.device) < FLIP, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = bw * sign, 2 * cx - 1, bh, 2 * cy - 1
    out = F.grid_sample(x, F.affine_grid(theta, [n, c, h, w], align_corners=False), align_corners=False,
                        padding_mode="border")
    sigma = torch.empty(n, device=x.device).uniform_(0.1, BLUR)
    t = torch.arange(-2, 3, device=x.device, dtype=x.dtype)
    k = torch.exp(-t ** 2 / (2 * sigma[:, None] ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)
    y = F.pad(out.reshape(1, n * c, h, w), (2, 2, 2, 2), mode="reflect")
    y = F.conv2d(F.conv2d(y, k[:, None, :, None], groups=n * c), k[:, None, None, :], groups=n * c)
    return y.reshape(n, c, h, w)


def matmul_views(x: torch.Tensor) -> torch.Tensor:
    return random_views(x, SCALE, FLIP, BLUR)


def time_it(fn, x: torch.Tensor, repeats: int) -> float:
    def once():
        fn(x).sum().backward()
        if x.is_cuda:
            torch.cuda.synchronize()
    once()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small images and batches, one repeat")
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size, batches, repeats = (64, [4], 1) if a.quick else (224, [4, 10, 64, 256 if device.type == "cuda" else 40], 5)
    rows = []
    for n in batches:
        x = torch.rand(n, 3, size, size, device=device, requires_grad=True)
        base = None
        for name, fn in [("loop", loop_views), ("grid", grid_views), ("matmul", matmul_views)]:
            seconds = time_it(fn, x, repeats)
            base = base or seconds
            rows.append({"batch": n, "size": size, "variant": name, "ms": round(1000 * seconds, 2),
                         "images_per_s": round(n / seconds, 1), "speedup_vs_loop": round(base / seconds, 2)})
            print(f"batch {n:>4} {name:<7} {1000 * seconds:8.2f} ms  x{base / seconds:.2f}", flush=True)
    write("views-quick" if a.quick else "views", {"device_name": str(device), "quick": a.quick, "rows": rows,
                                                   "complete": True})


if __name__ == "__main__":
    main()
