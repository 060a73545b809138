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
