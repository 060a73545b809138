"""Speed of every method's training loop against a naive baseline, side by side in one run.

For each method (reprogramming, SGD-UAP, GD-UAP with the data prior, a 10-class
targeted gallery) and each model, the same program and objective are trained by

- ``naive``: the loop of the public seed code: fp32, the model's parameters left
  requiring grad (so backward also computes weight gradients), NCHW, the batch moved
  host -> device every step, a Python-side loss and accuracy (two host syncs) every
  step, and for the gallery one class at a time;
- ``reprolab``: :func:`reprolab.fit` as the package runs it (frozen weights in
  channels-last memory format, data resident on the device, bf16 autocast on CUDA,
  metrics accumulated on the device, all gallery targets in one batched program);
- ``reprolab NCHW``: the same with the weights in the default (NCHW) memory format,
  which shows what channels-last alone is worth;
- for the gallery, ``reprolab`` is what :func:`reprolab.uap.targeted_uap` does: on a
  CPU one image, paired with every target, per forward/backward pass
  (``fit(micro_batch=1)``, the same update in smaller passes), elsewhere the whole batch;
  the other choice is timed too (``reprolab whole batch`` / ``reprolab micro-batch 1``);
- ``reprolab compiled`` (``--compile``): the model under ``torch.compile``.

It prints images/s (image-target pairs for the gallery), step time, peak memory (CPU
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

import torch

import reprolab
from reprolab import data, objectives, programs
from reprolab.train import TensorBatches, fit

from common import write

METHODS = ("reprogramming", "sgd_uap", "gd_uap_data", "gallery")
# dense bf16 tensor-core peaks, TFLOP/s (vendor data sheets, SXM parts)
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def build_model(name: str, device) -> reprolab.FrozenClassifier:
    if name.startswith("efficientnet_lite"):
        return reprolab.load_model(name, device=device)
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)  # random weights: speed only
    return reprolab.wrap_model(net, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                               input_size=224, class_names=[f"class_{i}" for i in range(1000)],
                               name=f"{name} (random weights)").to(device)


def methods(model, size: int, n_images: int, gallery_classes: int):
    """name -> (make_program, objective, x, y, targets per image)."""
    g = torch.Generator().manual_seed(0)
    photos = torch.rand(n_images, 3, size, size, generator=g)
    digits, labels = data.load_task("digits", "train")
    digits, labels = digits[:n_images], labels[:n_images]
    targets = list(range(gallery_classes))
    return {
        "reprogramming": (lambda: programs.ReprogrammingFrame(size, 32, n_task=10),
                          objectives.TaskCrossEntropy(), digits, labels, 1),
        "sgd_uap": (lambda: programs.AdditivePerturbation(size, 10 / 255, parametrization="projected"),
                    objectives.Untargeted(), photos, torch.randint(0, 1000, (n_images,), generator=g), 1),
        "gd_uap_data": (lambda: programs.AdditivePerturbation(size, 10 / 255, parametrization="projected"),
                        objectives.FeatureActivation(model.block_layers()), photos, torch.zeros(n_images), 1),
        "gallery": (lambda: programs.AdditivePerturbation(size, 64 / 255, n=len(targets)),
                    objectives.Targeted(targets), photos, torch.zeros(n_images), len(targets)),
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


def naive_run(model, size, make_program, objective, x, y, batch_size, steps, per_class: bool, n_targets: int):
    """The naive loop (see the module docstring); for the gallery, one class after another."""
    device = model.device
    model.requires_grad_(True)  # the seed code never froze the weights
    runs = [(objectives.Targeted(t), lambda: programs.AdditivePerturbation(size, 64 / 255))
            for t in range(n_targets)] if per_class else [(objective, make_program)]
    try:
        for obj, make in runs:
            program = make().to(device)
            opt = torch.optim.Adam(program.parameters(), lr=0.01)
            for step in range(steps):
                idx = torch.randint(0, len(x), (batch_size,))
                xb, yb = x[idx].to(device), y[idx].to(device)  # host -> device every batch
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


def reprolab_run(model, make_program, objective, x, y, batch_size, steps, micro_batch=None):
    device = model.device
    program = make_program().to(device)
    fit(program, model, objective, TensorBatches(x, y, batch_size, device=device), steps=steps, lr=0.01,
        progress=False, log_every=steps, micro_batch=micro_batch)


def flops_per_step(model, make_program, objective, x, y, batch_size) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    device = model.device
    program = make_program().to(device)
    counter = FlopCounterMode(display=False)
    with counter:
        loss, _ = objective(model, program, x[:batch_size].to(device), y[:batch_size].to(device))
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
              "quick": a.quick, "peak_bf16_tflops": peak, "complete": False, "rows": []}
    out_name = a.name or ("harness-quick" if a.quick else "harness")
    print(f"{device} ({gpu or 'CPU'}), batch {batch}, {steps} steps per run, median of {repeats}")
    for name in names:
        model = build_model(name, device)
        # a second copy under torch.compile; measure() warms up first, so compiling is not timed
        compiled = build_model(name, device).compile() if a.compile else None
        size = 96 if a.quick else model.input_size  # a smaller input keeps the smoke test short
        for method, (make, objective, x, y, per_step) in methods(model, size, max(4 * batch, 32),
                                                                 4 if a.quick else 10).items():
            if a.methods and method not in a.methods.split(","):
                continue
            gallery = method == "gallery"
            b = max(1, batch // 4) if gallery else batch  # the gallery pairs each image with every target
            flops = flops_per_step(model, make, objective, x, y, b)
            nchw, cl = torch.contiguous_format, torch.channels_last
            # the package's gallery default (targeted_uap): one photo x every target a pass on CPU
            mb, other = (1, None) if gallery and device.type == "cpu" else (None, 1)
            runs = {  # variant: (memory format of the weights, loop)
                "naive": (nchw, lambda: naive_run(model, size, make, objective, x, y, b, steps, gallery, per_step)),
                "reprolab": (cl, lambda: reprolab_run(model, make, objective, x, y, b, steps, mb)),
            }
            if not a.quick:
                runs["reprolab NCHW"] = (nchw, runs["reprolab"][1])
            if gallery:
                alternative = "reprolab micro-batch 1" if other else "reprolab whole batch"
                runs[alternative] = (cl, lambda: reprolab_run(model, make, objective, x, y, b, steps, other))
            if a.compile:  # the data-free objective records layers, which runs the network eagerly
                runs["reprolab compiled"] = (cl, lambda: reprolab_run(compiled, make, objective, x, y, b, steps, mb))
            base = None
            for variant, (memory_format, fn) in runs.items():
                model.to(memory_format=memory_format)
                seconds, mem = measure(fn, device, repeats)
                pairs = b * steps * per_step  # image (x target) pairs trained on
                row = {"model": model.name, "method": method, "variant": variant, "seconds": round(seconds, 3),
                       "step_ms": round(1000 * seconds / (steps * (per_step if variant == "naive" and gallery else 1)), 1),
                       "images_per_s": round(pairs / seconds, 2), "peak_memory_mb": round(mem / 2**20, 1),
                       "tflops": round(flops * steps / seconds / 1e12, 4)}  # same total work in every variant
                base = base or row["images_per_s"]
                row["speedup_vs_naive"] = round(row["images_per_s"] / base, 2)
                if peak:
                    row["fraction_of_peak"] = round(row["tflops"] / peak, 4)
                result["rows"].append(row)
                print(f"{model.name:<28} {method:<14} {variant:<24} {row['images_per_s']:>9.1f} img/s "
                      f"{row['step_ms']:>8.1f} ms/step {row['peak_memory_mb']:>8.0f} MB "
                      f"{row['tflops']:>7.3f} TFLOP/s  x{row['speedup_vs_naive']}", flush=True)
                write(out_name, result)  # partial results survive
        del model, compiled
    result["complete"] = True  # the tests check it
    write(out_name, result)


if __name__ == "__main__":
    main()
