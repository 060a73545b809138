"""Objectives: what a program is trained to minimise.

An objective is called as ``objective(model, program, x, y)`` and returns
``(loss, metrics)``: a scalar loss and a dict of detached scalar tensors that the
training loop averages and logs (kept on the device: no host sync per step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Targeted(nn.Module):
    """Cross-entropy towards one ImageNet class for every image: ``-log p(target | P(x))``.

    Logs ``target_rate`` (fraction of the batch classified as the target).
    """

    def __init__(self, target: int):
        super().__init__()
        self.target = int(target)

    def forward(self, model, program, x, y):
        logits = model(program(x))
        if not 0 <= self.target < logits.shape[1]:
            raise ValueError(f"target class {self.target} is out of range for {logits.shape[1]} classes")
        t = torch.full((len(x),), self.target, device=logits.device)
        loss = F.cross_entropy(logits.float(), t)
        return loss, {"target_rate": (logits.argmax(1) == t).float().mean().detach()}


class Untargeted(nn.Module):
    """Push every image away from its label ``y`` (use the *clean predictions* as ``y``).

    Args:
        loss: ``"clamped_ce"``: maximise ``min(CE(logits, y), clamp)`` (SGD-UAP, Shafahi
            et al. 2020: images already fooled by a margin stop pulling on the
            perturbation) or ``"margin"``: minimise ``max(z_y - max_{k != y} z_k, -clamp)``.
        clamp: the cap, in nats for ``clamped_ce`` and in logits for ``margin``.

    Logs ``fooling_rate`` (fraction of the batch whose prediction differs from ``y``).
    """

    def __init__(self, loss: str = "clamped_ce", clamp: float = 9.0):
        super().__init__()
        if loss not in ("clamped_ce", "margin"):
            raise ValueError(f"unknown loss {loss!r}; use 'clamped_ce' or 'margin'")
        self.loss, self.clamp = loss, float(clamp)

    def forward(self, model, program, x, y):
        logits = model(program(x)).float()
        if self.loss == "clamped_ce":
            loss = -F.cross_entropy(logits, y, reduction="none").clamp(max=self.clamp).mean()
        else:
            true = logits.gather(1, y[:, None]).squeeze(1)
            other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
            loss = (true - other).clamp(min=-self.clamp).mean()
        return loss, {"fooling_rate": (logits.argmax(1) != y).float().mean().detach()}


class TaskCrossEntropy(nn.Module):
    """Reprogramming: cross-entropy of the mapped task logits plus ``lam * ||W||^2``.

    The program must provide ``map_logits`` (the label mapping) and a parameter ``W``.
    Logs ``accuracy`` on the batch.
    """

    def __init__(self, lam: float = 1e-6):
        super().__init__()
        self.lam = float(lam)

    def forward(self, model, program, x, y):
        task_logits = program.map_logits(model(program(x)).float())
        loss = F.cross_entropy(task_logits, y) + self.lam * program.W.pow(2).sum()
        return loss, {"accuracy": (task_logits.argmax(1) == y).float().mean().detach()}
