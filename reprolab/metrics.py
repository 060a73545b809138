"""Metrics: accuracy, fooling rate and error rate (kept separate), transfer matrices.

* **fooling rate**: fraction of images whose prediction *changed* from the clean
  prediction. It needs no labels.
* **error rate**: fraction of perturbed images whose prediction differs from the
  *true* label. It counts images the model already got wrong, so it is not the
  fooling rate.

Report both on images never used for crafting.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from .models import FrozenClassifier


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``pred == y``.

    >>> accuracy(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4]))
    0.75
    """
    if pred.shape != y.shape or len(y) == 0:
        raise ValueError(f"need two equal, non-empty shapes, got {tuple(pred.shape)} and {tuple(y.shape)}")
    return (pred == y).float().mean().item()


def fooling_rate(clean_pred: torch.Tensor, adv_pred: torch.Tensor) -> float:
    """Fraction of images whose top-1 prediction changed.

    >>> fooling_rate(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 0, 3, 0]))
    0.5
    """
    return 1.0 - accuracy(adv_pred, clean_pred)


def error_rate(adv_pred: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of perturbed images misclassified with respect to the true labels ``y``."""
    return 1.0 - accuracy(adv_pred, y)


@torch.no_grad()
def predict(model: FrozenClassifier, x: torch.Tensor, program=None, batch_size: int = 64,
            device: torch.device | str | None = None) -> torch.Tensor:
    """Top-1 predictions ``(N,)`` of ``model(program(x))`` (or ``model(x)``), batched.

    Images move to ``device`` (default: the model's) one batch at a time.
    """
    device = device or next(model.parameters()).device
    preds = []
    for b in x.split(batch_size):
        b = b.to(device)
        preds.append(model(program(b) if program is not None else b).argmax(1).cpu())
    return torch.cat(preds)


def evaluate_perturbation(model: FrozenClassifier, program, x: torch.Tensor, y: torch.Tensor,
                          batch_size: int = 64, clean: torch.Tensor | None = None) -> dict:
    """Clean accuracy, fooling rate and error rate of ``program`` on held-out ``(x, y)``.

    Labels of ``-1`` (unknown) are left out of accuracy and error rate. Pass the clean
    predictions as ``clean`` when evaluating several programs on the same images.
    """
    clean = predict(model, x, batch_size=batch_size) if clean is None else clean
    adv = predict(model, x, program, batch_size=batch_size)
    known = y >= 0
    out = {"fooling_rate": fooling_rate(clean, adv), "n": len(y)}
    if known.any():
        out["clean_accuracy"] = accuracy(clean[known], y[known])
        out["error_rate"] = error_rate(adv[known], y[known])
    return out


def fooling_curve(model: FrozenClassifier, program, x: torch.Tensor, y: torch.Tensor,
                  eps_values: list[float], batch_size: int = 64) -> list[dict]:
    """Held-out metrics of an additive program rescaled to each bound in ``eps_values``."""
    clean = predict(model, x, batch_size=batch_size)
    return [{"eps": e, **evaluate_perturbation(model, program.scaled(e), x, y, batch_size, clean)}
            for e in eps_values]


def dominant_labels(model: FrozenClassifier, program, x: torch.Tensor, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` classes the program pushes images to most, with the fraction of images for each."""
    pred = predict(model, x, program)
    counts = torch.bincount(pred, minlength=model.num_classes).float() / len(pred)
    top = counts.topk(k)
    return [(model.class_names[i], v) for i, v in zip(top.indices.tolist(), top.values.tolist())]


def transfer_matrix(programs: Mapping[str, object], models: Mapping[str, FrozenClassifier],
                    images: Callable[[FrozenClassifier], tuple[torch.Tensor, torch.Tensor]],
                    metric: str = "fooling_rate") -> tuple[list[str], list[str], torch.Tensor]:
    """``M[i, j]`` = ``metric`` of the program crafted on ``i`` evaluated on model ``j``.

    Args:
        programs: name of the source model -> program crafted on it.
        models: name -> model to evaluate on.
        images: ``images(model) -> (x, y)`` held-out images at that model's input size.

    Returns:
        ``(row_names, col_names, M)`` with ``M`` of shape ``(len(programs), len(models))``.
    """
    cols = list(models)
    held = {name: images(m) for name, m in models.items()}
    clean = {name: predict(models[name], held[name][0]) for name in cols}
    m = torch.zeros(len(programs), len(cols))
    for i, program in enumerate(programs.values()):
        for j, name in enumerate(cols):
            x, y = held[name]
            m[i, j] = evaluate_perturbation(models[name], program, x, y, clean=clean[name])[metric]
    return list(programs), cols, m
