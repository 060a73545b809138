"""Random views of image batches: a resized crop, a flip and a blur per image, in one batched call.

Used in two places: to augment *clean* crafting images (a universal perturbation
crafted on a few hundred photos then generalises far better to unseen ones), and
between a perturbed image and the network (targeted universal images, chapter 5),
where gradients must flow back through the views to the perturbation.

Every image draws its own parameters, yet the whole batch takes two batched matrix
products: torchvision's transforms draw one set of parameters per call, so per-image
views there mean a Python loop over the batch (``benchmarks/harness.py`` times both).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def crop_boxes(n: int, scale: tuple[float, float] = (0.35, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
               device: torch.device | str = "cpu", tries: int = 10) -> torch.Tensor:
    """Random crop boxes as in ``RandomResizedCrop``: ``(n, 4)`` rows ``(cx, cy, w, h)`` in image fractions.

    The area fraction is uniform in ``scale`` and the aspect ratio log-uniform in
    ``ratio``; a box that does not fit is drawn again (up to ``tries`` times) and then
    shrunk to fit, keeping its ratio. The centre is uniform over the positions where
    the box fits.
    """
    lo, hi = scale
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"scale should satisfy 0 < min <= max <= 1 (area fractions), got {scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio should satisfy 0 < min <= max, got {ratio}")
    w = h = torch.full((n,), 2.0, device=device)
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(tries):
        bad = (w > 1) | (h > 1)
        if not bad.any():
            break
        area = torch.empty(n, device=device).uniform_(lo, hi)
        r = torch.exp(torch.empty(n, device=device).uniform_(*log_r))
        w = torch.where(bad, torch.sqrt(area * r), w)
        h = torch.where(bad, torch.sqrt(area / r), h)
    fit = torch.clamp(1 / torch.maximum(w, h), max=1.0)  # shrink what still does not fit
    w, h = w * fit, h * fit
    cx = w / 2 + torch.rand(n, device=device) * (1 - w)
    cy = h / 2 + torch.rand(n, device=device) * (1 - h)
    return torch.stack([cx, cy, w, h], dim=1)


def resample_matrix(start: torch.Tensor, length: torch.Tensor, size_in: int, size_out: int,
                    flip: torch.Tensor | None = None) -> torch.Tensor:
    """Bilinear resampling of pixels ``[start, start + length)`` to ``size_out`` pixels, as a matrix per image.

    The same sampling as ``grid_sample(align_corners=False, padding_mode="border")``;
    ``flip`` (bool, ``(N,)``) mirrors the output of the images where it is true.

    Shape:
        ``start``, ``length``: ``(N,)`` in pixels -> ``(N, size_out, size_in)``, two non-zeros a row.
    """
    i = torch.arange(size_out, device=start.device, dtype=start.dtype)
    s = start[:, None] + (i + 0.5) * (length[:, None] / size_out) - 0.5  # source coordinate of each output pixel
    if flip is not None:
        s = torch.where(flip[:, None], s.flip(1), s)
    s = s.clamp(0, size_in - 1)
    i0 = s.floor().long()
    frac = s - i0
    i1 = (i0 + 1).clamp(max=size_in - 1)
    m = torch.zeros(len(start), size_out, size_in, device=start.device, dtype=start.dtype)
    return m.scatter_add_(2, i0[..., None], (1 - frac)[..., None]).scatter_add_(2, i1[..., None], frac[..., None])


def blur_matrix(sigma: torch.Tensor, size: int, kernel_size: int = 5) -> torch.Tensor:
    """A Gaussian blur along one axis as a matrix per image, reflect-padded like torchvision's ``gaussian_blur``.

    Shape:
        ``sigma``: ``(N,)`` -> ``(N, size, size)``.
    """
    half = kernel_size // 2
    t = torch.arange(-half, half + 1, device=sigma.device)
    k = torch.exp(-t.to(sigma.dtype) ** 2 / (2 * sigma[:, None] ** 2))
    k = k / k.sum(dim=1, keepdim=True)
    cols = torch.arange(size, device=sigma.device)[:, None] + t  # (size, kernel_size)
    cols = torch.where(cols < 0, -cols, cols)
    cols = torch.where(cols > size - 1, 2 * (size - 1) - cols, cols)  # reflect at both edges
    n = len(sigma)
    m = torch.zeros(n, size, size, device=sigma.device, dtype=sigma.dtype)
    return m.scatter_add_(2, cols.expand(n, size, kernel_size), k[:, None, :].expand(n, size, kernel_size))


def random_views(x: torch.Tensor, scale: tuple[float, float] = (0.35, 1.0), flip: float = 0.5,
                 blur: float = 0.0, ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """Each image gets its own random resized crop (back to its size), horizontal flip and blur.

    Crop, resize, flip and blur are all linear and act on rows and columns separately,
    so each image's view is ``Ry @ x @ Rx.T`` with two small matrices: the batch takes
    two batched matrix products, on any device, and the gradient is two more.

    Args:
        scale: range of the crop's area as a fraction of the image.
        flip: probability of a horizontal flip.
        blur: if > 0, Gaussian blur (kernel 5) with a random sigma in ``(0.1, blur)``.
        ratio: range of the crop's aspect ratio (width / height).

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H, W)``; differentiable in ``x``. Parameters come from
        torch's global generator on ``x``'s device (``torch.manual_seed`` makes them repeat).
    """
    if x.dim() != 4:
        raise ValueError(f"random_views expects a batch (N, C, H, W), got shape {tuple(x.shape)}")
    if not 0 <= flip <= 1:
        raise ValueError(f"flip is a probability in [0, 1], got {flip}")
    n, _, hgt, wid = x.shape
    dev = x.device
    cx, cy, w, h = crop_boxes(n, scale, ratio, dev).unbind(1)
    ry = resample_matrix(hgt * (cy - h / 2), hgt * h, hgt, hgt)
    rx = resample_matrix(wid * (cx - w / 2), wid * w, wid, wid, flip=torch.rand(n, device=dev) < flip)
    if blur > 0:
        sigma = torch.empty(n, device=dev).uniform_(0.1, blur)
        ry, rx = blur_matrix(sigma, hgt) @ ry, blur_matrix(sigma, wid) @ rx
    return ry[:, None].to(x.dtype) @ x @ rx[:, None].transpose(-1, -2).to(x.dtype)


class RandomViews(nn.Module):
    """:func:`random_views` as a module (the default ``scale=(0.35, 1)`` is SGD-UAP's crop range).

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H, W)``; gradients flow back to the input.
    """

    def __init__(self, scale: tuple[float, float] = (0.35, 1.0), flip: float = 0.5, blur: float = 0.0,
                 ratio: tuple[float, float] = (3 / 4, 4 / 3)):
        super().__init__()
        self.scale, self.flip, self.blur, self.ratio = tuple(scale), flip, blur, tuple(ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return random_views(x, self.scale, self.flip, self.blur, self.ratio)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, flip={self.flip}, blur={self.blur}, ratio={self.ratio}"
