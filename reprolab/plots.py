"""Plots people would rather look at than read: image grids, perturbations, training curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .train import History


def _to_hwc(img: torch.Tensor):
    img = img.detach().float().cpu()
    return img.squeeze(0).numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()


def show_images(images: torch.Tensor, titles: list[str] | None = None, ncols: int = 8,
                size: float = 1.8, suptitle: str | None = None):
    """A grid of ``(N, C, H, W)`` images in [0, 1], with optional titles. Returns the figure."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_to_hwc(images[i]).clip(0, 1), cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def amplify(delta: torch.Tensor) -> torch.Tensor:
    """Map a perturbation to [0, 1] for display: 0.5 is no change, extremes are +-max|delta|."""
    return (0.5 + 0.5 * delta / delta.abs().max().clamp_min(1e-12)).clamp(0, 1)


def plot_history(history: History, keys: list[str] | None = None, title: str | None = None):
    """One panel per logged metric against the step. Returns the figure."""
    keys = keys or list(history.metrics)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 2.8), squeeze=False)
    for ax, k in zip(axes.flat, keys):
        ax.plot(history.steps, history.metrics[k], marker=".")
        ax.set_xlabel("step")
        ax.set_title(k)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion(pred: torch.Tensor, y: torch.Tensor, n: int, title: str = "confusion matrix"):
    """Row-normalised confusion matrix (rows: true class, columns: predicted). Returns the figure."""
    cm = torch.zeros(n, n)
    cm.index_put_((y.long(), pred.long()), torch.ones(len(y)), accumulate=True)
    cm = cm / cm.sum(1, keepdim=True).clamp_min(1)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    im = ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
    ax.set(xlabel="predicted", ylabel="true", title=title, xticks=range(n), yticks=range(n))
    for i in range(n):
        for j in range(n):
            if cm[i, j] >= 0.005:
                ax.text(j, i, f"{cm[i, j]:.2f}"[1:] if cm[i, j] < 1 else "1", ha="center", va="center",
                        fontsize=7, color="w" if cm[i, j] > 0.5 else "k")
    fig.colorbar(im)
    fig.tight_layout()
    return fig
