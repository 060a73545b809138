"""Random views of image batches, built on torchvision.transforms.v2 (differentiable on tensors).

Used in two places: to augment *clean* crafting images (a universal perturbation
crafted on a few hundred photos then generalises far better to unseen ones), and
between a perturbed image and the network (targeted universal images, chapter 5).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.transforms import v2


class RandomViews(nn.Module):
    """Each image gets its own random resized crop (back to its size) and horizontal flip.

    Args:
        scale: range of the crop's area as a fraction of the image.
        flip: probability of a horizontal flip.
        blur: if > 0, Gaussian blur with a random sigma in ``(0.1, blur)`` (kernel 5).

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H, W)``; gradients flow back to the input.
    """

    def __init__(self, scale: tuple[float, float] = (0.35, 1.0), flip: float = 0.5, blur: float = 0.0):
        super().__init__()
        self.scale, self.flip, self.blur = scale, flip, blur

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ops = [v2.RandomResizedCrop(x.shape[-2:], scale=self.scale, antialias=True),
               v2.RandomHorizontalFlip(self.flip)]
        if self.blur > 0:
            ops.append(v2.GaussianBlur(5, sigma=(0.1, self.blur)))
        views = v2.Compose(ops)
        return torch.stack([views(xi) for xi in x])  # v2 draws one set of parameters per call
