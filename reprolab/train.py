"""The one training loop every method uses: :func:`fit`.

It trains the parameters of a program (never the model's) to minimise an
objective, with Adam by default, bf16 autocast on CUDA, a progress bar, a history
of metrics, deterministic seeding per step, and checkpoints that resume exactly.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from . import distributed
from .artifacts import load_artifact, save_artifact
from .models import FrozenClassifier
from .programs import InputProgram

Batch = tuple[torch.Tensor, torch.Tensor]


class TensorBatches:
    """Mini-batches drawn from tensors kept resident on the device.

    ``batches(step)`` is a pure function of ``step``: epoch ``e`` uses the permutation
    seeded with ``seed + e``, so a resumed run sees exactly the batches it would have.

    Args:
        x: ``(N, ...)`` inputs; y: ``(N,)`` labels (or anything indexable alike).
        batch_size: images per step (clipped to N).
        device: where to keep the data (default: where ``x`` is).
        transform: applied to each batch of inputs (e.g. :class:`reprolab.augment.RandomViews`);
            :func:`fit` seeds every step, so its randomness is reproduced on resume.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int = 0,
                 device: torch.device | str | None = None, transform: Callable | None = None):
        if len(x) == 0:
            raise ValueError("no training data: x is empty")
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} items but y has {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.x, self.y = x.to(device), y.to(device)
        self.batch_size, self.seed, self.transform = min(batch_size, len(x)), seed, transform
        self.per_epoch = len(x) // self.batch_size
        self._epoch, self._perm = -1, None

    def __call__(self, step: int) -> Batch:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._epoch, self._perm = epoch, torch.randperm(len(self.x), generator=g).to(self.x.device)
        idx = self._perm[i * self.batch_size:(i + 1) * self.batch_size]
        x = self.x[idx]
        return (self.transform(x) if self.transform is not None else x), self.y[idx]


@dataclass
class History:
    """Metrics logged during :func:`fit`: ``steps[i]`` is the step at which ``metrics[k][i]`` was taken."""

    steps: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def log(self, step: int, values: dict[str, float]) -> None:
        """Append one row; a metric missing from a row is NaN there, so lists stay aligned."""
        for k in values:
            self.metrics.setdefault(k, [float("nan")] * len(self.steps))
        for k, column in self.metrics.items():
            column.append(values.get(k, float("nan")))
        self.steps.append(step)

    def last(self) -> dict[str, float]:
        """The latest logged value of each metric."""
        return {k: next((x for x in reversed(v) if x == x), float("nan")) for k, v in self.metrics.items()}

    def to_dict(self) -> dict:
        return {"steps": self.steps, "metrics": self.metrics, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(list(d["steps"]), {k: list(v) for k, v in d["metrics"].items()}, d["seconds"])


def fingerprint(t: torch.Tensor) -> str:
    """``"24x3x32x32 float32 sha256 1a2b..."``: a tensor's shape, dtype and a hash of its values."""
    t = t.detach().cpu().contiguous()
    digest = hashlib.sha256(t.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()[:16]
    return f"{'x'.join(map(str, t.shape)) or 'scalar'} {str(t.dtype).removeprefix('torch.')} sha256 {digest}"


def describe(obj, depth: int = 0) -> str:
    """A short text that tells settings apart: the type and public fields of ``obj``, recursively.

    >>> describe(torch.nn.Identity())
    'Identity()'

    Small tensors are written out, larger ones as a :func:`fingerprint`; functions by
    their qualified name (a closure's captured values are not seen).
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return repr(obj)
    if isinstance(obj, torch.Tensor):
        return repr(obj.tolist()) if obj.numel() <= 64 else fingerprint(obj)
    if isinstance(obj, (list, tuple)):
        inner = ", ".join(describe(v, depth + 1) for v in obj)
        return f"[{inner}]" if isinstance(obj, list) else f"({inner})"
    if isinstance(obj, functools.partial):
        parts = (describe(v, depth + 1) for v in (obj.func, obj.args, obj.keywords))
        return f"partial({', '.join(parts)})"
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{k}: {describe(v, depth + 1)}" for k, v in obj.items()) + "}"
    if callable(obj) and hasattr(obj, "__qualname__"):  # functions, methods, classes
        return f"{getattr(obj, '__module__', None) or ''}.{obj.__qualname__}".lstrip(".")
    name = type(obj).__name__
    if depth > 4 or not hasattr(obj, "__dict__"):
        return name
    fields = {k: v for k, v in vars(obj).items() if not k.startswith("_") and k != "training"}
    if isinstance(obj, torch.nn.Module):
        for group in ("_parameters", "_buffers", "_modules"):
            fields.update(getattr(obj, group, {}))
    return f"{name}({', '.join(f'{k}={describe(v, depth + 1)}' for k, v in fields.items())})"


def run_settings(program, model, objective, batches, steps: int, lr, optimizer, schedule: str, seed: int,
                 extra: dict | None = None) -> dict:
    """What a checkpoint of :func:`fit` records, and a resumed run must match (JSON values)."""
    settings = {
        "objective": describe(objective),
        "program": f"{type(program).__name__} {json.dumps(getattr(program, 'config', None), sort_keys=True)}",
        "model": str(getattr(model, "name", type(model).__name__)),
        "batches": describe(batches),
        "optimizer": "Adam" if optimizer is None else describe(optimizer),
        "lr": lr, "schedule": schedule, "steps": int(steps), "seed": seed,
    }
    clash = sorted(set(extra or {}) & set(settings))
    if clash:
        raise ValueError(f"settings {clash} are fit's own (it records them itself); give them other names")
    settings.update(extra or {})
    return json.loads(json.dumps(settings, default=describe))  # as stored: tuples become lists


def check_resume(path, saved: dict | None, settings: dict) -> None:
    """Refuse to resume a checkpoint made with other settings (``saved``), naming each difference.

    A larger step count than the checkpoint's is fine with a constant learning rate (the
    run goes on further); anything else must match exactly.
    """
    if saved is None:
        warnings.warn(f"{path} records no settings (an older reprolab made it): resuming it unchecked",
                      stacklevel=3)
        return
    diffs = []
    for key in sorted(set(saved) | set(settings)):
        old, new = saved.get(key, "(not recorded)"), settings.get(key, "(not given)")
        if key == "steps" and isinstance(old, int) and isinstance(new, int) and settings.get("schedule") == "constant":
            if old > new:
                diffs.append(f"steps: {old} in the checkpoint, {new} now (fewer than the run it was made by)")
            continue
        if old != new:
            diffs.append(f"{key}: {old!r} in the checkpoint, {new!r} now")
    if diffs:
        raise ValueError(f"the checkpoint {path} was made with other settings, so this run cannot resume it: "
                         f"{'; '.join(diffs)}. Rerun with the settings it was made with, or delete it to start over")


def _save_checkpoint(path: Path, program, optimizer, step: int, history: History, settings: dict,
                     window: tuple[dict, int, dict]) -> None:
    tensors = {f"program.{k}": v for k, v in program.state_dict().items()}
    opt = optimizer.state_dict()
    for i, state in opt["state"].items():
        for k, v in state.items():
            tensors[f"optim.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    sums, count, pending = window  # metrics of the steps since the last log: the next log averages them too
    tensors.update({f"sums.{k}": torch.as_tensor(v) for k, v in sums.items()})
    meta = {"step": step, "history": history.to_dict(), "param_groups": opt["param_groups"], "settings": settings,
            "count": count, "pending": pending}
    save_artifact(path, tensors, meta)


def _load_checkpoint(path: Path, program, optimizer, settings: dict,
                     device) -> tuple[int, History, tuple[dict, int, dict]]:
    """``(step, history, metrics since the last log)``, after loading the program and optimizer."""
    tensors, meta = load_artifact(path)
    check_resume(path, meta.get("settings"), settings)
    if meta.get("step", 0) > settings["steps"]:
        raise ValueError(f"the checkpoint {path} is at step {meta['step']}, past this run's {settings['steps']} "
                         "steps; rerun with at least that many, or delete it to start over")
    program.load_state_dict(program.upgrade({k[8:]: v for k, v in tensors.items() if k.startswith("program.")}))
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    # the metrics of the steps since the last log (none in a checkpoint of an older reprolab)
    sums = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("sums.")}
    window = (sums, int(meta.get("count", 0)), dict(meta.get("pending", {})))
    return meta["step"], History.from_dict(meta["history"]), window




def progress_bar(total: int, initial: int, enabled: bool, desc: str):
    """A notebook-aware tqdm bar; ``$REPROLAB_PROGRESS`` = ``text`` or ``off`` overrides it.

    Static builds (the book, papermill in CI) set ``off``: a widget bar has no kernel
    there and would render as raw JSON.
    """
    from .config import progress_mode

    mode = progress_mode()
    if mode == "text":
        from tqdm import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, disable=not enabled or mode == "off", desc=desc, leave=True)


def _forward_backward(objective, model, program, x, y, micro_batch, device_type, amp):
    """Loss and metrics of the whole batch, its gradient accumulated over passes of ``micro_batch``."""
    n = len(x)
    size = micro_batch or n
    loss, metrics = 0.0, {}
    for i in range(0, n, size):
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp):
            part, part_metrics = objective(model, program, x[i:i + size], None if y is None else y[i:i + size])
        share = min(size, n - i) / n  # each pass's loss is a mean: weight it by its size
        (part * share).backward()
        loss = loss + part.detach() * share
        for k, v in part_metrics.items():
            metrics[k] = metrics.get(k, 0) + v * share
    return loss, metrics


def _is_count(value) -> bool:
    """True for an integer >= 1 (Python or NumPy), never a bool or a float."""
    import operator

    if isinstance(value, bool):
        return False
    try:
        return operator.index(value) >= 1
    except TypeError:
        return False


def _is_positive(value) -> bool:
    try:
        return 0 < float(value) < math.inf
    except (TypeError, ValueError, RuntimeError):
        return False


@dataclass(frozen=True)
class Callback:
    """``fn(step, program) -> dict`` run by :func:`fit` every ``every`` steps and after the last.

    Its values (e.g. held-out accuracy) go into the history at the next log. It may
    also update the program (e.g. re-estimate a label mapping), which then happens
    identically on resume, since it is decided by the step alone.
    """

    fn: Callable[[int, InputProgram], dict | None]
    every: int = 10

    def due(self, done: int, steps: int) -> bool:
        return done % self.every == 0 or done == steps


def _set_lr(opt: torch.optim.Optimizer, base_lrs: list[float], schedule: str, step: int, steps: int) -> None:
    """Cosine decay from the initial rate to 0 at ``steps``, set from the step alone (exact on resume)."""
    if schedule == "cosine":
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * 0.5 * (1 + math.cos(math.pi * step / steps))


class _MetricWindow:
    """Sums of the metrics since the last log, kept on the device: one host sync per log."""

    def __init__(self, sums: dict | None = None, count: int = 0):
        self.sums, self.count = dict(sums or {}), count

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0) + v.float()
        self.count += 1

    def means(self) -> dict[str, float]:
        values = {k: (v / self.count).item() for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return values


def fit(program: InputProgram, model: FrozenClassifier, objective: Callable, batches: Callable[[int], Batch],
        steps: int, lr: float = 0.05, optimizer: Callable | None = None, schedule: str = "constant", seed: int = 0,
        amp: bool | None = None, log_every: int = 10, checkpoint: str | Path | None = None,
        checkpoint_every: int = 100, progress: bool = True, desc: str = "fit",
        callbacks: Sequence[Callback] = (), callback: Callable[[int, InputProgram], dict] | None = None,
        callback_every: int | None = None, data_parallel: bool | None = None,
        micro_batch: int | None = None, settings: dict | None = None) -> History:
    """Train ``program`` so that ``objective(model, program, x, y)`` goes down.

    Args:
        program: the learnable input (its parameters are the only ones optimised).
        model: a frozen classifier; it is never updated (its parameters need no grad).
        objective: returns ``(loss, metrics)``; see :mod:`reprolab.objectives`.
        batches: ``batches(step) -> (x, y)`` already on the device, e.g. :class:`TensorBatches`.
        steps: total optimiser steps (a resumed run continues up to this number).
        lr: learning rate of the default optimiser, Adam.
        optimizer: ``optimizer(params) -> torch.optim.Optimizer`` to replace Adam.
        schedule: ``"constant"`` or ``"cosine"`` (the learning rate decays from its
            initial value to 0 at ``steps``; set from the step number, so resume is exact).
        seed: global RNG seed; step ``s`` runs under ``seed + s`` so randomness inside the
            objective (augmentations, noise priors) is reproduced on resume.
        amp: bf16 autocast; default on for CUDA, off on CPU.
        log_every: average the metrics over this many steps, then log them (one sync).
        checkpoint: a ``.safetensors`` path; if it exists the run resumes from it, and it
            is rewritten atomically every ``checkpoint_every`` steps and at the end. It
            records the run's settings (:func:`run_settings`: the objective, program,
            model, batches, optimizer, lr, schedule, seed, step count, plus ``settings``),
            and a checkpoint made with other ones is refused with the differences named;
            only a larger ``steps`` with a constant learning rate may continue a run.
        callbacks: :class:`Callback` s, each with its own period, run in order after
            the optimiser step: ``Callback(fn, every)`` calls ``fn(step, program) -> dict``;
            the values go into the history at the next log.
        callback, callback_every: shorthand for one more callback, run first:
            ``Callback(callback, callback_every or log_every)``.
        data_parallel: under ``torchrun`` (default: whenever a process group is active),
            each rank trains on its slice of every global batch and the gradients are
            averaged (:mod:`reprolab.distributed`); only rank 0 shows progress and writes
            checkpoints. ``False`` trains independently on every rank.
        micro_batch: images per forward/backward pass. Each batch is split into passes of
            this many images whose gradients add up to the whole batch's (the same
            update, less memory; on CPU, smaller passes also stay in cache). Objectives
            must average over the batch, as all of :mod:`reprolab.objectives` do.
        settings: more JSON values that a checkpoint must have been made with to be
            resumed (e.g. a command's arguments); recorded with it.

    Returns:
        the :class:`History` of logged metrics (also stored in the checkpoint).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if callback is not None:
        callbacks = [Callback(callback, callback_every or log_every), *callbacks]
    for name, value in (("log_every", log_every), ("checkpoint_every", checkpoint_every),
                        ("callback_every", callback_every), *(("Callback.every", c.every) for c in callbacks)):
        if value is not None and not _is_count(value):
            raise ValueError(f"{name} must be a whole number of steps >= 1, got {value!r}")
    if optimizer is None and not _is_positive(lr):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if micro_batch is not None and micro_batch < 1:
        raise ValueError(f"micro_batch must be >= 1 image, got {micro_batch}")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown schedule {schedule!r}; use 'constant' or 'cosine'")
    if any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model has parameters that require grad; load it with "
                         "reprolab.load_model or wrap it with reprolab.wrap_model to freeze it")
    params = [p for p in program.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(program).__name__} has no trainable parameters")
    device = params[0].device
    amp = (device.type == "cuda") if amp is None else amp
    opt = optimizer(params) if optimizer is not None else torch.optim.Adam(params, lr=lr)
    base_lrs = [g["lr"] for g in opt.param_groups]
    history, start, resumed_window = History(), 0, ({}, 0, {})
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None:
        run = run_settings(program, model, objective, batches, steps, lr if optimizer is None else base_lrs,
                           optimizer, schedule, seed, settings)
        if checkpoint.exists():
            start, history, resumed_window = _load_checkpoint(checkpoint, program, opt, run, device)
    parallel = distributed.active() if data_parallel is None else data_parallel and distributed.active()
    lead = distributed.rank() == 0 or not parallel  # the rank that reports and writes
    if parallel:
        distributed.broadcast_(params)

    sums, count, pending = resumed_window  # metrics since the last log, sums of tensors on the device
    window = _MetricWindow(sums, count)
    t0 = time.perf_counter() - history.seconds
    bar = progress_bar(steps, start, progress and lead, desc)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(bar.close)
        for step in range(start, steps):
            torch.manual_seed(seed + step)
            _set_lr(opt, base_lrs, schedule, step, steps)
            x, y = batches(step)
            if parallel:
                x, y = distributed.shard(x, y)
            opt.zero_grad(set_to_none=True)
            loss, metrics = _forward_backward(objective, model, program, x, y, micro_batch, device.type, amp)
            if parallel:
                distributed.average_gradients(params)
            opt.step()
            program.project_()
            if step == start:  # this step validated the program's output: skip the host syncs from now on
                cleanup.enter_context(model.unchecked())
            window.add({"loss": loss, **metrics})
            done = step + 1
            for c in callbacks:
                if c.due(done, steps):
                    pending.update(c.fn(done, program) or {})
            if done % log_every == 0 or done == steps:
                values = window.means()
                if parallel:
                    values = distributed.mean_over_ranks(values, device)
                if values["loss"] != values["loss"] or abs(values["loss"]) == float("inf"):
                    raise FloatingPointError(f"loss became {values['loss']} by step {done}; lower lr")
                history.log(done, {**values, **pending})
                pending = {}
                bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()}, refresh=False)
            bar.update(1)
            if checkpoint is not None and lead and (done % checkpoint_every == 0 or done == steps):
                history.seconds = time.perf_counter() - t0
                _save_checkpoint(checkpoint, program, opt, done, history, run, (window.sums, window.count, pending))
    history.seconds = time.perf_counter() - t0
    return history
