"""Speed of every method's training loop against a naive baseline, side by side in one run.

For each method (reprogramming, SGD-UAP, GD-UAP with the data prior, a 10-class
targeted gallery) and each model, the same program and objective are trained, with the
random views the package's defaults use (SGD-UAP and the data prior: crops and flips of
the clean photos; the gallery: crops, flips and blur between the changed photo and the
network; ``--views off`` times without them), by

- ``naive``: the loop of the public reference code: fp32, the model's parameters left
  requiring grad (so backward also computes weight gradients), NCHW, the batch moved
  host -> device every step, a Python-side loss and accuracy (two host syncs) every
  step, the views drawn one image at a time (torchvision's transforms take one set of
  parameters per call), and for the gallery one class at a time;
- ``reprolab``: :func:`reprolab.fit` as the package runs it (frozen weights in
  channels-last memory format, data resident on the device, bf16 autocast on CUDA,
  metrics accumulated on the device, all gallery targets in one batched program, the
  views of a whole batch in one call: :func:`reprolab.augment.random_views`);
- ``reprolab NCHW``: the same with the weights in the default (NCHW) memory format,
  which shows what channels-last alone is worth;
- for the gallery, ``reprolab`` is what :func:`reprolab.uap.targeted_uap` does: on a
  CPU one image, paired with every target, per forward/backward pass
  (``fit(micro_batch=1)``, the same update in smaller passes), elsewhere the whole batch;
  the other choice is timed too (``reprolab whole batch`` / ``reprolab micro-batch 1``);
- ``reprolab compiled`` (``--compile``): the model under ``torch.compile``.

Every row records what it timed (views, dtype, channels-last, compile). It prints
images/s (image-target pairs for the gallery), step time, peak memory (CPU
RSS or CUDA max allocated), the speed-up over ``naive``, and achieved TFLOP/s (FLOPs of
one step counted with ``torch.utils.flop_counter``), with the fraction of the device's
bf16 peak on known GPUs. resnet50 and vgg16 have random weights (speed does not depend
on them; no download). Results: ``results/harness-<device>.json``.

    python benchmarks/harness.py --quick       # a few minutes on 2 CPU cores (tested)
    python benchmarks/harness.py               # CPU: lite0 and resnet50
    python benchmarks/harness.py --models efficientnet_lite0,resnet50,vgg16 --batch-size 256   # GPU
    python benchmarks/harness.py --compile --name harness-compile   # adds torch.compile (untimed warm-up)

The comparison with ART's UniversalPerturbation (time to the same held-out fooling
rate) needs the real photos and held-out evaluations: ``benchmarks/uap.py``.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Callable, NamedTuple

import torch
from torchvision.transforms import v2

import reprolab
from reprolab import data, objectives, programs, uap
from reprolab.augment import RandomViews
from reprolab.train import TensorBatches, fit

from common import write

METHODS = ("reprogramming", "sgd_uap", "gd_uap_data", "gallery")
# dense bf16 tensor-core peaks, TFLOP/s (vendor data sheets, SXM parts)
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


class Method(NamedTuple):
    make_program: Callable[[], programs.InputProgram]
    objective: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor
    per_step: int  # targets per image (the gallery pairs every image with every target)
    transform: torch.nn.Module | None  # random views of the clean batch (TensorBatches' transform)

    @property
    def has_views(self) -> bool:
        """Random views anywhere: of the clean batch, or between the changed batch and the network."""
        return self.transform is not None or not isinstance(getattr(self.objective, "views", None),
                                                            (torch.nn.Identity, type(None)))


def build_model(name: str, device) -> reprolab.FrozenClassifier:
    # random weights for the online models: speed does not depend on them, and nothing is downloaded
    pretrained = reprolab.models.REGISTRY[name].source == "offline"
    return reprolab.load_model(name, device=device, pretrained=pretrained)


class LoopViews(torch.nn.Module):
    """The naive way to give every image its own random view: torchvision's transforms draw one set
    of parameters per call, so one call per image (what ``RandomViews`` did before it was batched)."""

    def __init__(self, scale, flip, blur):
        super().__init__()
        ops = [v2.RandomResizedCrop(1, scale=scale, antialias=True), v2.RandomHorizontalFlip(flip)]
        self.ops = ops + ([v2.GaussianBlur(5, sigma=(0.1, blur))] if blur > 0 else [])

    def forward(self, x):
        self.ops[0].size = tuple(x.shape[-2:])
        views = v2.Compose(self.ops)
        return torch.stack([views(xi) for xi in x])


def methods(model, size: int, n_images: int, gallery_classes: int, views: str):
    """name -> Method, with the package's random views (``views="batched"``), the naive
    per-image loop of them (``"loop"``) or none (``"off"``)."""
    def make_views(v: RandomViews):
        return {"batched": v, "loop": LoopViews(v.scale, v.flip, v.blur), "off": None}[views]

    photo_views = make_views(RandomViews())  # sgd_uap's and the data prior's views of the clean photos
    gallery_views = make_views(uap.gallery_views())  # targeted_uap's views of the changed photos
    g = torch.Generator().manual_seed(0)
    photos = torch.rand(n_images, 3, size, size, generator=g)
    digits, labels = data.load_task("digits", "train")
    digits, labels = digits[:n_images], labels[:n_images]
    targets = list(range(gallery_classes))
    eps = 10 / 255
    return {
        "reprogramming": Method(lambda: programs.ReprogrammingFrame(size, 32, n_task=10),
                                objectives.TaskCrossEntropy(), digits, labels, 1, None),
        "sgd_uap": Method(lambda: programs.AdditivePerturbation(size, eps, parametrization="projected"),
                          objectives.Untargeted(), photos, torch.randint(0, 1000, (n_images,), generator=g), 1,
                          photo_views),
        "gd_uap_data": Method(lambda: programs.AdditivePerturbation(size, eps, parametrization="projected"),
                              objectives.FeatureActivation(model.block_layers()), photos, torch.zeros(n_images), 1,
                              photo_views),
        "gallery": Method(lambda: programs.AdditivePerturbation(size, 64 / 255, n=len(targets)),
                          objectives.Targeted(targets, views=gallery_views), photos, torch.zeros(n_images),
                          len(targets), None),
    }


class PeakMemory:
    """Peak CUDA allocation, or peak process RSS sampled every 5 ms on CPU, over a block."""

    def __init__(self, device):
        self.cuda, self.peak = device.type == "cuda", 0

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.running = True
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        import os

        page = os.sysconf("SC_PAGE_SIZE")
        while self.running:
            with open("/proc/self/statm") as f:
                self.peak = max(self.peak, int(f.read().split()[1]) * page)
            time.sleep(0.005)

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self.running = False
            self.thread.join()


def naive_run(model, size, m: Method, batch_size, steps, per_class: bool):
    """The naive loop (see the module docstring); for the gallery, one class after another."""
    device = model.device
    model.requires_grad_(True)  # the reference code never froze the weights
    if per_class:
        runs = [(objectives.Targeted(t, views=m.objective.views), lambda: programs.AdditivePerturbation(size, 64 / 255))
                for t in range(m.per_step)]
    else:
        runs = [(m.objective, m.make_program)]
    try:
        for obj, make in runs:
            program = make().to(device)
            opt = torch.optim.Adam(program.parameters(), lr=0.01)
            for step in range(steps):
                idx = torch.randint(0, len(m.x), (batch_size,))
                xb, yb = m.x[idx].to(device), m.y[idx].to(device)  # host -> device every batch
                if m.transform is not None:
                    xb = m.transform(xb)
                loss, metrics = obj(model, program, xb, yb)
                opt.zero_grad()
                model.zero_grad()
                loss.backward()
                opt.step()
                program.project_()
                for v in [loss, *metrics.values()]:  # Python-side metrics every step: host syncs
                    v.item()
    finally:
        model.requires_grad_(False)
        model.zero_grad(set_to_none=True)


def reprolab_run(model, m: Method, batch_size, steps, micro_batch=None):
    device = model.device
    program = m.make_program().to(device)
    batches = TensorBatches(m.x, m.y, batch_size, device=device, transform=m.transform)
    fit(program, model, m.objective, batches, steps=steps, lr=0.01, progress=False, log_every=steps,
        micro_batch=micro_batch)


def flops_per_step(model, m: Method, batch_size) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    device = model.device
    program = m.make_program().to(device)
    counter = FlopCounterMode(display=False)
    with counter:
        loss, _ = m.objective(model, program, m.x[:batch_size].to(device), m.y[:batch_size].to(device))
        loss.backward()
    return counter.get_total_flops()


def measure(fn, device, repeats: int) -> tuple[float, int]:
    """Median wall time of ``repeats`` calls (after one warm-up call) and the peak memory."""
    fn()
    times = []
    with PeakMemory(device) as mem:
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    return statistics.median(times), mem.peak


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="efficientnet_lite0 at 96 px, few steps")
    p.add_argument("--models", default=None, help="comma-separated (default: lite0 and resnet50)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="steps per timed run")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--methods", default=None, help="comma-separated subset of " + ", ".join(METHODS))
    p.add_argument("--compile", action="store_true", help="add a variant with the model under torch.compile")
    p.add_argument("--views", choices=["on", "off"], default="on",
                   help="random views where the package's defaults use them (SGD-UAP, data prior, gallery); "
                        "naive applies them one image at a time")
    p.add_argument("--name", default=None, help="results file name (default: harness or harness-quick)")
    a = p.parse_args()
    device = reprolab.models.best_device()
    names = a.models.split(",") if a.models else (["efficientnet_lite0"] if a.quick else
                                                   ["efficientnet_lite0", "resnet50"])
    batch = a.batch_size or (4 if a.quick else (256 if device.type == "cuda" else 16))
    steps = a.steps or (2 if a.quick else 5)
    repeats = 1 if a.quick else a.repeats
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else None
    peak = next((v for k, v in PEAK_TFLOPS.items() if gpu and k in gpu), None)
    result = {"device_name": gpu or "cpu", "batch_size": batch, "steps_per_run": steps, "repeats": repeats,
              "quick": a.quick, "views": a.views, "peak_bf16_tflops": peak, "complete": False, "rows": []}
    out_name = a.name or ("harness-quick" if a.quick else "harness")
    print(f"{device} ({gpu or 'CPU'}), batch {batch}, {steps} steps per run, median of {repeats}")
    for name in names:
        model = build_model(name, device)
        # a second copy under torch.compile; measure() warms up first, so compiling is not timed
        compiled = build_model(name, device).compile() if a.compile else None
        size = 96 if a.quick else model.input_size  # a smaller input keeps the smoke test short
        n_images, n_classes = max(4 * batch, 32), 4 if a.quick else 10
        package = methods(model, size, n_images, n_classes, "batched" if a.views == "on" else "off")
        naive = methods(model, size, n_images, n_classes, "loop" if a.views == "on" else "off")
        for method, m in package.items():
            if a.methods and method not in a.methods.split(","):
                continue
            gallery = method == "gallery"
            b = max(1, batch // 4) if gallery else batch  # the gallery pairs each image with every target
            flops = flops_per_step(model, m, b)
            nchw, cl = torch.contiguous_format, torch.channels_last
            # the package's gallery default (targeted_uap): one photo x every target a pass on CPU
            mb, other = (1, None) if gallery and device.type == "cpu" else (None, 1)
            runs = {  # variant: (memory format of the weights, compiled, loop)
                "naive": (nchw, False, lambda: naive_run(model, size, naive[method], b, steps, gallery)),
                "reprolab": (cl, False, lambda: reprolab_run(model, m, b, steps, mb)),
            }
            if not a.quick:
                runs["reprolab NCHW"] = (nchw, False, runs["reprolab"][2])
            if gallery:
                alternative = "reprolab micro-batch 1" if other else "reprolab whole batch"
                runs[alternative] = (cl, False, lambda: reprolab_run(model, m, b, steps, other))
            if a.compile:  # the data-free objective records layers, which runs the network eagerly
                runs["reprolab compiled"] = (cl, True, lambda: reprolab_run(compiled, m, b, steps, mb))
            base = None
            for variant, (memory_format, is_compiled, fn) in runs.items():
                model.to(memory_format=memory_format)
                seconds, mem = measure(fn, device, repeats)
                pairs = b * steps * m.per_step  # image (x target) pairs trained on
                uses_views = m.has_views
                row = {"model": model.name, "method": method, "variant": variant,
                       "views": uses_views, "dtype": "float32" if variant == "naive" or device.type != "cuda"
                       else "bfloat16 autocast", "channels_last": memory_format == cl, "compile": is_compiled,
                       "seconds": round(seconds, 3),
                       "step_ms": round(1000 * seconds / (steps * (m.per_step if variant == "naive" and gallery else 1)), 1),
                       "images_per_s": round(pairs / seconds, 2), "peak_memory_mb": round(mem / 2**20, 1),
                       "tflops": round(flops * steps / seconds / 1e12, 4)}  # same total work in every variant
                base = base or row["images_per_s"]
                row["speedup_vs_naive"] = round(row["images_per_s"] / base, 2)
                if peak:
                    row["fraction_of_peak"] = round(row["tflops"] / peak, 4)
                result["rows"].append(row)
                print(f"{model.name:<28} {method:<14} {variant:<24} views {'on ' if uses_views else 'off'} "
                      f"{row['images_per_s']:>9.1f} img/s {row['step_ms']:>8.1f} ms/step "
                      f"{row['peak_memory_mb']:>8.0f} MB {row['tflops']:>7.3f} TFLOP/s  x{row['speedup_vs_naive']}",
                      flush=True)
                write(out_name, result)  # partial results survive
        del model, compiled
    result["complete"] = True  # the tests check it
    write(out_name, result)


if __name__ == "__main__":
    main()
