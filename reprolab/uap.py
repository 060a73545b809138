"""Universal adversarial perturbations crafted from data.

* :func:`sgd_uap` — SGD-UAP (Shafahi et al. 2020): mini-batch gradient ascent on a
  clamped cross-entropy with projection onto the eps-ball, through :func:`reprolab.fit`.
* :func:`deepfool_uap` — UAP (Moosavi-Dezfooli et al. 2017): for each crafting image not
  yet fooled, the minimal extra perturbation found by DeepFool, then projection.
* :func:`targeted_uap` — targeted universal images (Nozdryn-Plotnicki 2018): one
  ``delta = eps * tanh(w)`` per target class, seen through random views; the gallery
  (:mod:`reprolab.gallery`) stores one per class.

All return an :class:`~reprolab.programs.AdditivePerturbation`, the same artifact
type, bounded in L-inf or L2 in [0, 1] pixel units. No true label is used: the
untargeted ones aim away from the model's own clean predictions.
"""

from __future__ import annotations

import time

import torch

from .augment import RandomViews
from .metrics import predict
from .models import FrozenClassifier
from .objectives import Targeted, Untargeted
from .programs import AdditivePerturbation, check_eps
from .train import History, TensorBatches, progress_bar, fit


def sgd_uap(model: FrozenClassifier, x: torch.Tensor, eps: float = 10 / 255, norm: str = "inf",
            steps: int = 200, batch_size: int = 32, lr: float | None = None, loss: str = "clamped_ce",
            augment: bool = True, seed: int = 0, progress: bool = True, **fit_kwargs) -> tuple[AdditivePerturbation, History]:
    """Craft a universal perturbation by projected mini-batch gradient ascent.

    Args:
        model: the frozen classifier.
        x: crafting images ``(N, 3, S, S)`` at the model's input size; only these are seen.
        eps: the bound in [0, 1] pixel units (``10 / 255`` is the paper's 10 on 0-255).
        norm: ``"inf"`` or ``"2"``.
        lr: Adam step size in pixel units (default ``eps / 10`` for L-inf; for L2, the
            same per-pixel step scaled by the image's side).
        augment: show the model random crops and flips of the crafting photos
            (:class:`~reprolab.augment.RandomViews`). With a few hundred photos this is what
            makes the perturbation generalise (the book's results page compares held-out
            fooling rates with and without it).
        fit_kwargs: passed on to :func:`reprolab.fit` (checkpoint, callback, ...).

    Returns:
        ``(program, history)``.
    """
    device = model.device
    program = AdditivePerturbation(x.shape[-1], eps, norm=norm, parametrization="projected").to(device)
    if lr is None:
        lr = eps / 10 if norm == "inf" else eps / (10 * x.shape[-1])
    labels = predict(model, x)  # the clean predictions: fooling means changing them
    batches = TensorBatches(x, labels, batch_size, seed=seed, device=device,
                            transform=RandomViews() if augment else None)
    history = fit(program, model, Untargeted(loss), batches, steps=steps, lr=lr, seed=seed,
                  progress=progress, desc=f"SGD-UAP {norm} eps={eps:.4g}", **fit_kwargs)
    return program, history


def deepfool(model: FrozenClassifier, x: torch.Tensor, num_classes: int = 10, overshoot: float = 0.02,
             max_iter: int = 50, norm: str = "2") -> torch.Tensor:
    """Minimal perturbations ``r`` that change each image's prediction (DeepFool), batched.

    Each step linearises the logits of the ``num_classes`` top classes of the clean
    image and moves to the closest linearised decision boundary; images are dropped
    from the batch as soon as their prediction changes.

    Args:
        x: ``(N, 3, H, W)`` images in [0, 1].
        num_classes: candidate classes (the top ones of the clean logits; 10 in the paper).
        overshoot: the final perturbation is ``(1 + overshoot) * r``.
        norm: ``"2"`` (classic DeepFool) or ``"inf"`` (its L-inf variant).

    Returns:
        ``r`` of the shape of ``x``, with ``model(clip(x + r))`` changed where DeepFool converged.
    """
    with torch.no_grad():
        cand = model(x).topk(num_classes, dim=1).indices  # (N, K), cand[:, 0] = clean prediction
    r_total = torch.zeros_like(x)
    active = torch.arange(len(x), device=x.device)
    for _ in range(max_iter):
        xa = (x[active] + (1 + overshoot) * r_total[active]).clamp(0, 1).requires_grad_(True)
        logits = model(xa)
        keep = (logits.argmax(1) == cand[active, 0]).nonzero().squeeze(1)  # not fooled yet
        if len(keep) == 0:
            break
        active = active[keep]
        picked = logits[keep].gather(1, cand[active])  # (n, K) logits of the candidates
        grads = torch.stack([torch.autograd.grad(picked[:, k].sum(), xa, retain_graph=k < num_classes - 1)[0][keep]
                             for k in range(num_classes)], 1)  # (n, K, 3, H, W)
        w = (grads[:, 1:] - grads[:, :1]).flatten(2)  # normals of the boundaries to each candidate
        f = (picked[:, 1:] - picked[:, :1]).detach()  # (n, K-1), negative while not fooled
        dual = w.abs().sum(2) if norm == "inf" else w.norm(dim=2)  # dual norm of the normal
        dist = f.abs() / dual.clamp_min(1e-8)
        best = dist.argmin(1)
        rows = torch.arange(len(best), device=x.device)
        wb, db = w[rows, best], dist[rows, best, None] + 1e-4
        step = db * (wb.sign() if norm == "inf" else wb / wb.norm(dim=1, keepdim=True).clamp_min(1e-8))
        r_total[active] += step.view_as(x[active])
    return (1 + overshoot) * r_total


def deepfool_uap(model: FrozenClassifier, x: torch.Tensor, eps: float = 10 / 255, norm: str = "inf",
                 target_fooling: float = 0.8, max_passes: int = 5, min_gain: float | None = 0.0,
                 batch_size: int = 16, num_classes: int = 10, overshoot: float = 0.02, max_iter: int = 50,
                 augment: bool = False, seed: int = 0,
                 progress: bool = True) -> tuple[AdditivePerturbation, History]:
    """Craft a universal perturbation with the DeepFool-based UAP algorithm.

    Passes over the crafting images until their fooling rate reaches
    ``target_fooling`` (the paper's ``1 - delta``), stops rising, or ``max_passes`` is
    spent. Each mini-batch finds, in parallel, the images ``x + v`` does not fool yet,
    computes their DeepFool steps at the current ``v``, and adds them to ``v`` one by one
    with a projection after each (the paper adds them one image at a time; batching
    shares the forward/backward).

    Args:
        min_gain: stop when a pass raises the crafting fooling rate by no more than this
            (``None``: never; run until ``target_fooling`` or ``max_passes``).
        augment: DeepFool on random crops and flips of the crafting photos
            (:class:`~reprolab.augment.RandomViews`, SGD-UAP's views), a fresh view of each
            photo on every pass; the stopping rule still reads the photos themselves.
        seed: the order of the photos in each pass (and, with ``augment``, the views).

    It does not go through :func:`reprolab.fit` and keeps no checkpoint: a stopped run
    starts again from the beginning (``reprolab uap --method deepfool`` too).

    Returns:
        ``(program, history)``; the history logs the crafting-set fooling rate per pass.
    """
    device = model.device
    program = AdditivePerturbation(x.shape[-1], eps, norm=norm, parametrization="projected").to(device)
    clean = predict(model, x)
    views = RandomViews() if augment else None
    history = History()
    g = torch.Generator().manual_seed(seed)
    if augment:
        torch.manual_seed(seed)  # the views draw from the global generator
    bar = progress_bar(max_passes * len(x), 0, progress, f"DeepFool-UAP {norm} eps={eps:.4g}")
    t0, last = time.perf_counter(), None
    for p in range(max_passes):
        for idx in torch.randperm(len(x), generator=g).split(batch_size):
            xb = x[idx].to(device)
            if views is not None:
                xb = views(xb)
            with torch.no_grad():
                adv = program(xb)
                todo = (model(adv).argmax(1).cpu() == clean[idx]).nonzero().squeeze(1)
            if len(todo):
                # L2 DeepFool steps for either ball, as in the reference code; the program's
                # projection enforces the chosen norm after each one.
                r = deepfool(model, adv[todo], num_classes, overshoot, max_iter, norm="2")
                for ri in r:
                    with torch.no_grad():
                        program.w.add_(ri[None])
                    program.project_()
            bar.update(len(idx))
        rate = 1 - (predict(model, x, program) == clean).float().mean().item()
        history.log((p + 1) * len(x), {"fooling_rate": rate})
        bar.set_postfix(fooling_rate=f"{rate:.3f}")
        if rate >= target_fooling or (min_gain is not None and last is not None and rate <= last + min_gain):
            break
        last = rate
    bar.close()
    history.seconds = time.perf_counter() - t0
    return program, history


def gallery_views(scale: tuple[float, float] = (0.7, 1.0), blur: float = 1.0) -> RandomViews:
    """The augmentations of the gallery: resized crops (``scale`` of the area), flips, blur."""
    return RandomViews(scale=scale, flip=0.5, blur=blur)


def targeted_uap(model: FrozenClassifier, x: torch.Tensor, targets: list[int], eps: float = 64 / 255,
                 steps: int = 200, batch_size: int = 4, lr: float = 0.1, augment: bool = True,
                 seed: int = 0, progress: bool = True, parametrization: str = "tanh",
                 **fit_kwargs) -> tuple[AdditivePerturbation, History]:
    """Craft one targeted universal perturbation per class in ``targets``, all at once.

    Args:
        x: crafting images ``(N, 3, S, S)``; their labels are not needed.
        targets: class indices, one perturbation each.
        eps: L-inf bound, ``delta = eps * tanh(w)``. The default, 64/255, is visible on
            purpose (as in Nozdryn-Plotnicki 2018); at 32/255 the views make the targets
            far harder to reach.
        batch_size: images per step, shared by all targets (the model sees
            ``len(targets) * batch_size`` images per step).
        lr: Adam's step on ``w`` (0.1 suits ``"tanh"``, 0.2 ``"fourier"``: ``benchmarks/parametrization.py``).
        augment: random views between the changed image and the network.
        parametrization: ``"tanh"`` learns each pixel; ``"fourier"`` learns a 1/f-scaled
            spectrum in decorrelated colours (see :class:`AdditivePerturbation`).
        fit_kwargs: passed to :func:`reprolab.fit`. Its ``micro_batch`` defaults to 1 on a
            CPU (one photo with every target per forward/backward pass, the same update)
            and to the whole batch elsewhere: one photo a pass is the faster choice on a
            few CPU cores and the slower one on a GPU (``benchmarks/harness.py``; the
            book's results page has the timings).

    Returns:
        ``(program, history)``: ``program.delta()[k]`` is the change for ``targets[k]``.
    """
    targets = [int(t) for t in targets]
    bad = [t for t in targets if not 0 <= t < model.num_classes]
    if bad:
        raise ValueError(f"class ids {bad} are not in [0, {model.num_classes}); see model.class_names")
    device = model.device
    program = AdditivePerturbation(x.shape[-1], check_eps(eps), parametrization=parametrization,
                                   n=len(targets)).to(device)
    batches = TensorBatches(x, torch.zeros(len(x), dtype=torch.long), batch_size, seed=seed, device=device)
    objective = Targeted(targets, views=gallery_views() if augment else None)
    fit_kwargs.setdefault("micro_batch", 1 if device.type == "cpu" else None)
    history = fit(program, model, objective, batches, steps=steps, lr=lr, seed=seed, progress=progress,
                  desc=f"targeted x{len(targets)}", **fit_kwargs)
    return program, history
