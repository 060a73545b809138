"""Metrics: accuracy, fooling rate and error rate (kept separate), transfer matrices.

* **fooling rate**: fraction of images whose prediction *changed* from the clean
  prediction. It needs no labels.
* **error rate**: fraction of perturbed images whose prediction differs from the
  *true* label. It counts images the model already got wrong, so it is not the
  fooling rate.

Report both on images never used for crafting.
"""

from __future__ import annotations

import math
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
    """Fraction of perturbed images misclassified with respect to the true labels ``y``.

    Not the fooling rate: an image that was already wrong counts here even if the
    perturbation did not change it, and one pushed from one wrong class to another
    counts once.

    >>> clean, adv, y = torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 0]), torch.tensor([1, 5, 3, 4])
    >>> fooling_rate(clean, adv), error_rate(adv, y)
    (0.5, 0.75)
    """
    return 1.0 - accuracy(adv_pred, y)


@torch.no_grad()
def predict(model: FrozenClassifier, x: torch.Tensor, program=None, batch_size: int = 64,
            device: torch.device | str | None = None) -> torch.Tensor:
    """Top-1 predictions ``(N,)`` of ``model(program(x))`` (or ``model(x)``), batched.

    Images move to ``device`` (default: the model's) one batch at a time.
    """
    device = device or model.device
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
    """The ``k`` classes the program pushes *fooled* images to most.

    Only images whose prediction changed count (an image that keeps its class was not
    pushed anywhere); each share is the fraction of all ``x`` fooled into that class, so
    the shares sum to at most the fooling rate.
    """
    clean, adv = predict(model, x), predict(model, x, program)
    moved = adv[adv != clean]
    counts = torch.bincount(moved, minlength=model.num_classes).float() / len(x)
    top = counts.topk(k)
    return [(model.class_names[i], v) for i, v in zip(top.indices.tolist(), top.values.tolist())
            if v > 0]


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


@torch.no_grad()
def targeted_success(model: FrozenClassifier, program, x: torch.Tensor, targets: list[int],
                     batch_size: int = 64) -> dict:
    """How often each of a program's perturbations makes ``model`` answer its target.

    Args:
        program: an :class:`~reprolab.programs.AdditivePerturbation` with
            ``n = len(targets)`` perturbations (``delta[k]`` aims at ``targets[k]``).
        x: held-out images ``(N, 3, S, S)``.

    Returns:
        ``target_success`` (mean over classes of the fraction whose top-1 is the target),
        ``target_prob`` (mean target probability), their ``per_class`` lists and ``n``.
    """
    if len(targets) != len(program.w):
        raise ValueError(f"{len(targets)} targets for a program with {len(program.w)} perturbations")
    device = model.device
    success, prob = [], []
    for k, t in enumerate(targets):
        single = program.select(k)
        p = torch.cat([model(single(b.to(device))).float().softmax(1).cpu() for b in x.split(batch_size)])
        success.append((p.argmax(1) == t).float().mean().item())
        prob.append(p[:, t].mean().item())
    return {"target_success": sum(success) / len(success), "target_prob": sum(prob) / len(prob),
            "per_class": success, "per_class_prob": prob, "n": len(x)}


def high_frequency_share(delta: torch.Tensor, sigma: float = 1.0) -> list[float]:
    """Share of each change's energy that a Gaussian blur with ``sigma`` pixels removes.

    A legibility measure for pictures: near 0 for smooth changes, near 1 for pixel noise.

    Args:
        delta: changes ``(n, 3, H, W)`` (``program.delta()``).

    Returns:
        one share per change.

    >>> smooth = torch.linspace(0, 1, 32).expand(1, 3, 32, 32)
    >>> high_frequency_share(smooth)[0] < 0.01 < high_frequency_share(torch.randn(1, 3, 32, 32))[0]
    True
    """
    from torchvision.transforms.v2 import functional as TF

    d = delta.detach().float()
    k = 2 * math.ceil(2 * sigma) + 1  # the kernel covers +-2 sigma
    rest = d - TF.gaussian_blur(d, [k, k], [sigma, sigma])
    return (rest.pow(2).flatten(1).sum(1) / d.pow(2).flatten(1).sum(1).clamp_min(1e-12)).tolist()


def miou(pred: torch.Tensor, ref: torch.Tensor, num_classes: int) -> float:
    """Mean intersection-over-union of two label maps, over the classes present in either.

    Used to compare a segmentation of perturbed images with that of clean ones.

    >>> round(miou(torch.tensor([[0, 0, 1, 1]]), torch.tensor([[0, 1, 1, 1]]), 2), 4)
    0.5833
    """
    if pred.shape != ref.shape:
        raise ValueError(f"label maps differ in shape: {tuple(pred.shape)} vs {tuple(ref.shape)}")
    p, r = pred.flatten().long(), ref.flatten().long()
    inter = torch.bincount(p[p == r], minlength=num_classes).float()
    union = torch.bincount(p, minlength=num_classes) + torch.bincount(r, minlength=num_classes) - inter
    present = union > 0
    return (inter[present] / union[present]).mean().item()


def evaluate_program(model: FrozenClassifier, program, meta: dict, images=None, split: str = "heldout",
                     root=None, download: bool = False, classes: list[int] | None = None) -> dict:
    """The metrics ``reprolab evaluate`` reports for a saved program, by its kind.

    * a :class:`~reprolab.programs.ReprogrammingFrame`: ``heldout_accuracy`` on its task's
      held-out images (``meta["task"]``); ``split="craft"`` measures ``train_accuracy`` on
      the task's training images instead (``train_n`` of them), and ``"all"`` both: the
      gap between the two shows how much a program overfits;
    * an additive program with ``meta["targets"]`` (a gallery): ``target_success`` and
      ``target_prob``, per class too, on the ``split`` of the photos (only ``classes``
      when given);
    * any other additive program: ``fooling_rate``, ``error_rate`` and ``clean_accuracy``.

    Every result has ``n``, the number of images measured.
    """
    from . import data
    from .programs import ReprogrammingFrame

    if isinstance(program, ReprogrammingFrame):
        from .reprogramming import task_predict

        if "task" not in meta:
            raise ValueError("this reprogramming artifact does not name its task (metadata 'task')")
        out = {"task": meta["task"], "split": split}
        if split in ("craft", "all"):
            tx, ty = data.load_task(meta["task"], "train", root=root, download=download)
            out |= {"train_accuracy": accuracy(task_predict(model, program, tx), ty), "train_n": len(ty)}
        if split in ("heldout", "all"):
            hx, hy = data.load_task(meta["task"], "heldout", root=root, download=download)
            out |= {"heldout_accuracy": accuracy(task_predict(model, program, hx), hy), "n": len(hy)}
        return {"n": out.get("train_n"), **out}  # n: the held-out count when measured, else the training one
    x, y = data.load_images(images, model=model, split=split, root=root, download=download)
    targets = meta.get("targets")
    if targets is None and len(program.w) > 1:
        raise ValueError(f"the artifact holds {len(program.w)} perturbations but no 'targets' list in its "
                         "metadata, so there is nothing to measure them against")
    if targets is None:
        return {"split": split, **evaluate_perturbation(model, program, x, y)}
    keep = list(range(len(targets)))
    if classes is not None:
        missing = sorted(set(classes) - set(targets))
        if missing:
            raise ValueError(f"classes {missing} are not in this artifact (it has {len(targets)} classes)")
        keep = [targets.index(c) for c in classes]
    ids = [targets[k] for k in keep]
    rates = targeted_success(model, program.select(keep), x, ids)
    per_class = [{"id": c, "name": model.class_names[c], "target_success": s, "target_prob": p}
                 for c, s, p in zip(ids, rates["per_class"], rates["per_class_prob"])]
    return {"split": split, "target_success": rates["target_success"], "target_prob": rates["target_prob"],
            "n": rates["n"], "per_class": per_class}
