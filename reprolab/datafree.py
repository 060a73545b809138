"""Data-free universal perturbations: GD-UAP and Fast Feature Fool (Mopuri et al.).

The perturbation is crafted to make the network's features fire as hard as possible
(:class:`~reprolab.objectives.FeatureActivation`), with one of three *priors* on what
it is added to:

* ``"none"`` — nothing: the model's mean image (zero after its normalisation, which
  is what "the input is delta alone" means in the reference code) plus ``delta``.
* ``"range"`` — random Gaussian images with the ImageNet pixel mean and spread,
  resampled every step and viewed as the reference code views them
  (:class:`GaussianImages`).
* ``"data"`` — natural images (random crops and flips of them).

No label is ever read. The result is an :class:`~reprolab.programs.AdditivePerturbation`,
evaluated like any other universal perturbation.
"""

from __future__ import annotations

from typing import Callable

import torch

from .augment import RandomViews
from .metrics import fooling_rate, predict
from .models import FrozenClassifier
from .objectives import FeatureActivation
from .programs import AdditivePerturbation, check_eps
from .train import Callback, History, TensorBatches, fit

PRIORS = ("none", "range", "data")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MeanImage:
    """``batches(step) -> (n copies of the model's mean image, None)``: the no-data prior, ``(n, 3, S, S)``."""

    def __init__(self, model: FrozenClassifier, size: int, n: int = 1):
        self.x = model.mean.expand(n, 3, size, size).clone()

    def __call__(self, step: int):
        return self.x, None


class GaussianImages:
    """``batches(step) -> (Gaussian noise images in [0, 1], None)``: the range prior, ``(N, 3, S, S)``.

    Per-pixel noise with the ImageNet pixel mean and spread, clipped to [0, 1]. With
    ``like_photos`` (the default), each image is what Mopuri et al.'s reference code feeds
    the network: a crop of a larger noise image (``source`` px a side, default 500 for 224) put through the
    same random views as their data prior (a resize to a random scale, a flip, a blur
    half the time) and their final resize. The resizes and the blur average neighbouring
    pixels, so these images are smoother and less spread than raw per-pixel noise
    (``like_photos=False``), which no photo resembles.

    A fresh batch every step, drawn from the global RNG, which :func:`reprolab.fit`
    seeds per step (so a resumed run draws the same images).
    """

    def __init__(self, size: int, batch_size: int, device, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 like_photos: bool = True, source: int | None = None):
        self.size, self.batch_size, self.like_photos = size, batch_size, like_photos
        self.source = source or round(size * 500 / 224)  # the reference's 500 px noise image, for 224 px inputs
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def _noise(self, n: int, side: int) -> torch.Tensor:
        """``n`` per-pixel noise images ``(n, 3, side, side)``, clipped to [0, 1]."""
        noise = torch.randn((n, 3, side, side), device=self.mean.device)
        return (self.mean + self.std * noise).clamp(0, 1)

    def _like_photo(self) -> torch.Tensor:
        import torch.nn.functional as F
        from torchvision.transforms.v2 import functional as TF

        # the reference code's views: short side to size * scale (scale 1 or U(0.75, 1.5)), no antialiasing ...
        scale = 1.0 if torch.rand(()) < 0.5 else float(torch.empty(()).uniform_(0.75, 1.5))
        side = max(self.size, round(self.size * scale))
        img = F.interpolate(self._noise(1, self.source), size=(side, side), mode="bilinear", align_corners=False)
        if torch.rand(()) < 0.5:
            img = img.flip(-1)
        if torch.rand(()) < 0.5:  # ... a Gaussian blur (sigma 1) half the time ...
            img = TF.gaussian_blur(img, kernel_size=[5, 5], sigma=[1.0, 1.0])
        top, left = (int(torch.randint(0, side - self.size + 1, ())) for _ in range(2))
        img = img[..., top:top + self.size, left:left + self.size]
        # ... and the evaluation resize (short side 256 for 224) with its centre crop
        big = round(self.size * 256 / 224)
        img = F.interpolate(img, size=(big, big), mode="bilinear", align_corners=False)
        off = (big - self.size) // 2
        return img[..., off:off + self.size, off:off + self.size]

    def __call__(self, step: int):
        if not self.like_photos:
            return self._noise(self.batch_size, self.size), None
        return torch.cat([self._like_photo() for _ in range(self.batch_size)]), None


def prior_batches(model: FrozenClassifier, prior: str, size: int, batch_size: int = 16,
                  x: torch.Tensor | None = None, seed: int = 0, mean_copies: int = 1):
    """The ``batches`` callable for a prior; ``x`` (natural images) only for ``"data"``.

    The no-data prior's batch is ``mean_copies`` copies of the mean image (more than one
    only makes sense with random views after the perturbation).
    """
    if prior not in PRIORS:
        raise ValueError(f"unknown prior {prior!r}; use one of {', '.join(PRIORS)}")
    device = model.device
    if prior == "data":
        if x is None or len(x) == 0:
            raise ValueError("the data prior needs images: pass x (e.g. the crafting photos)")
        views = TensorBatches(x, torch.zeros(len(x)), batch_size, seed=seed, device=device, transform=RandomViews())
        return lambda step: (views(step)[0], None)  # images only: no label goes anywhere
    if x is not None:
        raise ValueError(f"the {prior!r} prior uses no images; drop x or use prior='data'")
    return MeanImage(model, size, mean_copies) if prior == "none" else GaussianImages(size, batch_size, device)


def saturation(program: AdditivePerturbation) -> float:
    """Fraction of the perturbation's values within 1 % of the bound."""
    return (program.delta().abs() >= 0.99 * program.eps).float().mean().item()


def datafree_uap(model: FrozenClassifier, prior: str | Callable = "none", x: torch.Tensor | None = None,
                 eps: float = 10 / 255, steps: int = 300, batch_size: int = 16, layers: list[str] | None = None,
                 stat: str = "l2", lr: float | None = None, halve_at: float | None = None,
                 val: torch.Tensor | None = None, check_every: int = 25, jitter: float | None = None,
                 seed: int = 0, progress: bool = True, **fit_kwargs) -> tuple[AdditivePerturbation, History]:
    """Craft an L-inf universal perturbation by maximising feature activations, no labels.

    Args:
        model: the frozen classifier.
        prior: ``"none"``, ``"range"`` or ``"data"`` (see the module docstring), or your
            own ``batches(step) -> (images, None)`` callable (e.g.
            ``GaussianImages(224, 8, device, like_photos=False)``).
        x: natural images for the data prior, ``(N, 3, S, S)``; none for the other priors.
        eps: L-inf bound in [0, 1] pixel units.
        layers: layers whose activations are maximised (default: ``model.block_layers()``,
            the residual/MBConv blocks; ``model.conv_layers()`` is the other natural choice).
        stat: ``"l2"`` (GD-UAP) or ``"mean_abs"`` (FFF).
        lr: Adam step in pixel units (default ``eps / 2``, far larger than SGD-UAP's: the
            activations grow slowly from a flat start); the perturbation is projected onto
            the eps-ball after every step.
        halve_at: the reference code's trick, off by default: every ``check_every`` steps,
            if at least this fraction of the perturbation sits at the bound, halve it (it
            restarts the climb from a less saturated point). Use it with ``val``, as the
            reference code does: each check validates before it halves and the best is
            kept; without ``val`` a halving near the end returns a perturbation that had
            no steps left to climb back (the book's results page has a measured case).
        val: optional validation images (never the ones you report on). Every
            ``check_every`` steps their fooling rate is logged as ``val_fooling_rate``,
            and the best perturbation so far is the one returned (early stopping). The best
            one is not in a ``checkpoint``: a resumed run picks among the checks after it.
        jitter: if set, the network sees random resized crops (smallest area fraction
            ``jitter``) and flips of the perturbed input, ``batch_size`` of them per step
            (for the no-data prior too: copies of the mean image). The perturbation must
            then excite the features wherever it lands, not only at one alignment.
        fit_kwargs: passed to :func:`reprolab.fit` (checkpoint, log_every, ...).

    Returns:
        ``(program, history)``; ``history`` holds ``log_act.<layer>`` per logged step.
    """
    eps = check_eps(eps)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if halve_at is not None and not 0 < halve_at <= 1:
        raise ValueError(f"halve_at is a fraction in (0, 1], got {halve_at}")
    size = model.input_size if x is None else x.shape[-1]
    if jitter is not None and not 0 < jitter <= 1:
        raise ValueError(f"jitter is the smallest crop area, a fraction in (0, 1], got {jitter}")
    if callable(prior):
        batches, prior = prior, type(prior).__name__
    else:
        batches = prior_batches(model, prior, size, batch_size, x, seed, mean_copies=batch_size if jitter else 1)
    views = RandomViews(scale=(jitter, 1.0)) if jitter else None
    if layers is None:
        layers = model.block_layers()
        if not layers:
            raise ValueError(f"{model.name} has no convolutional layers to maximise; "
                             "pass layers=[names from model.net.named_modules()]")
    elif layers:
        layers = model.check_layers(layers)  # unknown names: a ValueError now, not a KeyError mid-run
    program = AdditivePerturbation(size, eps, parametrization="projected")
    with torch.no_grad():  # a random start, as in the reference code: zero can be a flat spot
        g = torch.Generator().manual_seed(seed)
        program.w.copy_((torch.rand(program.w.shape, generator=g) * 2 - 1) * eps)
    program = program.to(model.device)
    val_clean = predict(model, val) if val is not None else None
    best = {"rate": -1.0, "w": None}

    def check(step, prog):
        out = {"saturation": saturation(prog)}
        if val is not None:  # before any halving: the saturated perturbation is the candidate
            rate = fooling_rate(val_clean, predict(model, val, prog))
            out["val_fooling_rate"] = rate
            if rate > best["rate"]:
                best.update(rate=rate, w=prog.w.detach().clone())
        if halve_at is not None and out["saturation"] >= halve_at:
            with torch.no_grad():
                prog.w.mul_(0.5)
        return out

    history = fit(program, model, FeatureActivation(layers, stat, views), batches, steps=steps,
                  lr=lr or eps / 2, seed=seed, progress=progress, desc=f"data-free ({prior} prior)",
                  callbacks=[*fit_kwargs.pop("callbacks", ()), Callback(check, check_every)], **fit_kwargs)
    if best["w"] is not None:
        with torch.no_grad():
            program.w.copy_(best["w"])
    return program, history


@torch.no_grad()
def activation_energy(model: FrozenClassifier, layers: list[str], x: torch.Tensor, program=None,
                      stat: str = "l2") -> torch.Tensor:
    """Mean log activation energy per layer, ``(len(layers),)``, of ``model(program(x))``."""
    _, metrics = FeatureActivation(layers, stat)(model, program or (lambda z: z), x, None)
    return torch.stack([metrics[f"log_act.{n}"] for n in layers]).cpu()
