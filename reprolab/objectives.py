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
    """Cross-entropy towards a target class for every image: ``-log p(target | A(P(x)))``.

    Args:
        target: one ImageNet class, or one per perturbation of a program with
            ``n = len(target)`` (its output is perturbation-major, see
            :class:`~reprolab.programs.AdditivePerturbation`).
        views: an optional random transform ``A`` between the program's output and the
            network (e.g. :class:`~reprolab.augment.RandomViews`); it must be
            differentiable so the gradient reaches the program.

    Logs ``target_rate`` (fraction of the batch classified as its target).
    """

    def __init__(self, target: int | list[int], views: nn.Module | None = None):
        super().__init__()
        self.targets = torch.tensor(target, dtype=torch.long).flatten()  # kept on the CPU: checks cost no sync
        if len(self.targets) == 0 or int(self.targets.min()) < 0:
            raise ValueError(f"targets must be class indices >= 0, got {target}")
        self.views = views or nn.Identity()

    def forward(self, model, program, x, y):
        adv = program(x)
        logits = model(self.views(adv))
        if len(logits) != len(self.targets) * len(x):
            raise ValueError(f"{len(self.targets)} targets for a program that made {len(logits)} images "
                             f"from {len(x)}: give one target per perturbation")
        if int(self.targets.max()) >= logits.shape[1]:
            raise ValueError(f"target class {int(self.targets.max())} is out of range for {logits.shape[1]} classes")
        t = self.targets.to(logits.device).repeat_interleave(len(x))
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
    """Reprogramming: cross-entropy of the mapped task logits plus ``lam * ||w||^2``.

    The program must provide ``map_logits`` (the label mapping) and a parameter ``w``.
    Logs ``accuracy`` on the batch.
    """

    def __init__(self, lam: float = 1e-6):
        super().__init__()
        self.lam = float(lam)

    def forward(self, model, program, x, y):
        task_logits = program.map_logits(model(program(x)).float())
        loss = F.cross_entropy(task_logits, y) + self.lam * program.w.pow(2).sum()
        return loss, {"accuracy": (task_logits.argmax(1) == y).float().mean().detach()}


class FeatureActivation(nn.Module):
    """Data-free objective: make the perturbed input excite the network's features.

    For each recorded layer ``l`` and image, the activation energy is
    ``e_l = mean(a_l ** 2)`` (``stat="l2"``, GD-UAP: Mopuri et al., TPAMI) or
    ``mean(|a_l|)`` (``stat="mean_abs"``, Fast Feature Fool); the loss is
    ``-sum_l log e_l`` averaged over the batch. (A mean instead of GD-UAP's sum only
    shifts each log by a constant, so the gradient is the same.) No label is read:
    ``y`` is ignored unless a caller passes the model's clean predictions, in which
    case the batch fooling rate is logged too (:func:`reprolab.datafree.datafree_uap`
    passes ``None``).

    Args:
        layers: names of the model's layers to record (e.g. ``model.block_layers()``).
        stat: ``"l2"`` or ``"mean_abs"``.
        views: an optional random transform between the perturbed input and the network
            (as in :class:`Targeted`), e.g. random crops so that the perturbation must
            excite the features wherever it lands.

    Logs ``log_act.<layer>`` (mean log energy per layer) and, when ``y`` is given,
    ``fooling_rate``.
    """

    def __init__(self, layers: list[str], stat: str = "l2", views: nn.Module | None = None):
        super().__init__()
        if not layers:
            raise ValueError("no layers to maximise; pass model.block_layers() or model.conv_layers()")
        if stat not in ("l2", "mean_abs"):
            raise ValueError(f"unknown stat {stat!r}; use 'l2' (GD-UAP) or 'mean_abs' (FFF)")
        self.layers, self.stat, self.views = list(layers), stat, views or nn.Identity()

    def forward(self, model, program, x, y):
        adv = program(x)
        with model.record(self.layers) as acts:
            logits = model(self.views(adv))
        energy = []
        for name in self.layers:
            a = acts[name].float().flatten(1)
            energy.append(a.pow(2).mean(1) if self.stat == "l2" else a.abs().mean(1))
        logs = torch.stack(energy, 1).clamp_min(1e-12).log()  # (N, layers)
        metrics = {f"log_act.{n}": logs[:, i].mean().detach() for i, n in enumerate(self.layers)}
        if y is not None:
            metrics["fooling_rate"] = (logits.argmax(1) != y).float().mean().detach()
        return -logs.sum(1).mean(), metrics
