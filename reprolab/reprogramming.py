"""Adversarial reprogramming: train a :class:`~reprolab.programs.ReprogrammingFrame`.

Label mappings (which ImageNet classes stand for each task class), one interface:

* ``"first"`` — the paper's fixed mapping: task class ``i`` -> ImageNet class ``i``.
* ``"frequency"`` — each task class gets the ImageNet class the frozen model most
  often predicts for its images under the initial program, one-to-one (BAR,
  Tsai et al. 2020; ILM-VP, Chen et al. 2023).
* ``"iterative"`` — ILM-VP: the frequency mapping re-estimated with the current program
  at the start of every epoch (one that a full epoch of training follows).

``m > 1`` maps several ImageNet classes to each task class (their logits averaged).
"""

from __future__ import annotations

import torch

from .models import FrozenClassifier
from .objectives import TaskCrossEntropy
from .programs import ReprogrammingFrame
from .train import Callback, History, TensorBatches, fit

MAPPINGS = ("first", "frequency", "iterative")


def greedy_assignment(counts: torch.Tensor, m: int = 1) -> torch.Tensor:
    """One-to-one assignment from a ``(n_task, n_classes)`` score table, greedily by score.

    Repeatedly takes the highest remaining (task, class) pair whose task still needs a
    class and whose class is unused; returns ``(n_task, m)`` class indices.

    >>> greedy_assignment(torch.tensor([[5., 4., 0.], [9., 1., 2.]])).tolist()
    [[1], [0]]
    """
    n_task, n_classes = counts.shape
    if n_task * m > n_classes:
        raise ValueError(f"cannot map {n_task} task classes to {m} distinct classes each: "
                         f"only {n_classes} classes")
    counts = counts.clone().float()
    index = torch.full((n_task, m), -1, dtype=torch.long)
    filled = torch.zeros(n_task, dtype=torch.long)
    for _ in range(n_task * m):
        flat = counts.argmax()
        t, c = divmod(flat.item(), n_classes)
        index[t, filled[t]] = c
        filled[t] += 1
        counts[:, c] = float("-inf")  # the class is taken
        if filled[t] == m:
            counts[t] = float("-inf")  # the task is done
    return index


@torch.no_grad()
def frequency_mapping(model: FrozenClassifier, program: ReprogrammingFrame, x: torch.Tensor,
                      y: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``(n_task, m)`` ImageNet classes the model predicts most often for each task class."""
    n_task = program.label_map.shape[0]
    counts = torch.zeros(n_task, model.num_classes, device=x.device)
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        probs = model(program(xb)).float().softmax(1)
        top1 = torch.nn.functional.one_hot(probs.argmax(1), model.num_classes).float()
        # argmax counts decide; the summed probabilities (tiny weight) only break ties
        counts.index_add_(0, yb, top1 + 1e-3 * probs)
    return greedy_assignment(counts.cpu(), program.label_map.shape[1]).to(program.label_map.device)


@torch.no_grad()
def task_predict(model: FrozenClassifier, program: ReprogrammingFrame, x: torch.Tensor,
                 batch_size: int = 128) -> torch.Tensor:
    """Task-class predictions ``(N,)`` of the reprogrammed model."""
    device = program.w.device
    return torch.cat([program.map_logits(model(program(b.to(device)))).argmax(1).cpu()
                      for b in x.split(batch_size)])


def reprogram(model: FrozenClassifier, x: torch.Tensor, y: torch.Tensor, n_task: int = 10,
              mapping: str = "frequency", m: int = 1, steps: int = 1000, batch_size: int = 32,
              lr: float = 0.05, lam: float = 1e-6, size: int | None = None, image_size: int | None = None,
              schedule: str = "cosine", seed: int = 0, mapping_images: int = 2000, progress: bool = True,
              **fit_kwargs) -> tuple[ReprogrammingFrame, History]:
    """Learn a frame (and, for learned mappings, a label mapping) that makes ``model`` solve a task.

    Args:
        x, y: training images ``(N, C, h, w)`` in [0, 1] and task labels ``(N,)`` in ``[0, n_task)``.
        mapping: ``"first"``, ``"frequency"`` or ``"iterative"`` (re-estimated every epoch).
        m: ImageNet classes per task class.
        size: canvas side (default: the model's input size; smaller multiples of 32 are
            much faster on CPU).
        image_size: side of the embedded task image (default: ``size // 3``, about the
            paper's proportion of 28 px MNIST inside a 299 px canvas, upscaled).
        schedule: learning-rate schedule of :func:`reprolab.fit`; cosine decay (the
            default) did far better than a constant rate on MNIST in our probes.
        mapping_images: how many training images (the first ones) estimate the mapping.
        fit_kwargs: passed to :func:`reprolab.fit` (log_every, checkpoint, callback, ...).

    Returns:
        ``(program, history)``; the mapping is stored in ``program.label_map``.
    """
    if mapping not in MAPPINGS:
        raise ValueError(f"unknown mapping {mapping!r}; use one of {', '.join(MAPPINGS)}")
    if int(y.max()) >= n_task or int(y.min()) < 0:
        raise ValueError(f"labels must be in [0, {n_task}); got [{int(y.min())}, {int(y.max())}]")
    device = model.device
    size = size or model.input_size
    program = ReprogrammingFrame(size, image_size or size // 3, n_task, m).to(device)
    if n_task * m > model.num_classes:
        raise ValueError(f"k = {n_task} x {m} ImageNet classes needed but the model has {model.num_classes}")
    batches = TensorBatches(x, y, batch_size, seed=seed, device=device)
    # the mapping is estimated on a fixed subset: enough to rank classes, cheap to redo
    map_x, map_y = batches.x[:mapping_images], batches.y[:mapping_images]
    if mapping != "first":
        program.label_map.copy_(frequency_mapping(model, program, map_x, map_y))

    def remap(step, prog):
        # At the start of every epoch that a full epoch of training follows (a new mapping needs
        # that time: re-mapped 50 steps before the end of a cosine run, MNIST accuracy fell from
        # 85 % to 53 %). Decided by the step alone, so a resumed run re-maps where it would have.
        if mapping == "iterative" and step % batches.per_epoch == 0 and step + batches.per_epoch <= steps:
            prog.label_map.copy_(frequency_mapping(model, prog, map_x, map_y))

    # after the user's callbacks: they see the mapping this step trained with
    callbacks = [*fit_kwargs.pop("callbacks", ()), Callback(remap, every=1)]
    history = fit(program, model, TaskCrossEntropy(lam), batches, steps=steps, lr=lr, schedule=schedule, seed=seed,
                  progress=progress, desc=f"reprogram ({mapping})", callbacks=callbacks, **fit_kwargs)
    return program, history
