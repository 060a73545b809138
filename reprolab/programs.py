"""Programs: the learnable inputs. Each maps a batch of images to model inputs in [0, 1].

A program is an ``nn.Module`` whose parameters are the only thing ever trained; the
classifier stays frozen. ``project_()`` is called after every optimiser step to
enforce constraints that the parametrisation does not already guarantee.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .artifacts import load_artifact, save_artifact

PROGRAMS: dict[str, type["InputProgram"]] = {}


class InputProgram(nn.Module):
    """Base class: subclasses set ``self.config`` (constructor kwargs) and implement forward."""

    config: dict

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        PROGRAMS[cls.__name__] = cls  # so artifacts can be loaded back by class name

    def project_(self) -> None:
        """Enforce constraints in place after an optimiser step (default: none)."""


def check_eps(eps: float, norm: str = "inf") -> float:
    """``eps`` as a float if it is a valid bound: in (0, 1] for L-inf, > 0 for L2."""
    if not eps > 0 or (norm == "inf" and eps > 1):
        raise ValueError(f"eps must be in (0, 1] in [0, 1] pixel units (L2: > 0), got {eps}; "
                         "for 10 on the 0-255 scale pass 10/255")
    return float(eps)


class AdditivePerturbation(InputProgram):
    """One universal change ``delta`` added to every image: ``clamp(x + delta, 0, 1)``.

    Args:
        size: height and width of ``delta`` (a model's ``input_size``).
        eps: the bound on ``delta`` in [0, 1] pixel units.
        norm: ``"inf"`` (``|delta| <= eps`` per pixel) or ``"2"`` (``||delta||_2 <= eps``).
        parametrization: ``"tanh"``: ``delta = eps * tanh(w)`` (L-inf only, bounded by
            construction) or ``"projected"``: ``delta`` is the parameter, projected
            onto the eps-ball after every step.

    Shape:
        input ``(N, 3, H, W)`` in [0, 1]; output the same. If ``H, W`` differ from
        ``size``, ``delta`` is resized bilinearly (for transfer to other models).
    """

    def __init__(self, size: int, eps: float, norm: str = "inf", parametrization: str = "tanh"):
        super().__init__()
        if norm not in ("inf", "2"):
            raise ValueError(f"unknown norm {norm!r}; use 'inf' or '2'")
        if parametrization not in ("tanh", "projected"):
            raise ValueError(f"unknown parametrization {parametrization!r}; use 'tanh' or 'projected'")
        if parametrization == "tanh" and norm != "inf":
            raise ValueError("the tanh parametrization bounds L-inf only; use parametrization='projected' for norm '2'")
        self.config = dict(size=int(size), eps=check_eps(eps, norm), norm=norm, parametrization=parametrization)
        self.eps, self.norm, self.parametrization = self.config["eps"], norm, parametrization
        self.w = nn.Parameter(torch.zeros(1, 3, size, size))

    def delta(self) -> torch.Tensor:
        """The perturbation, ``(1, 3, size, size)``."""
        return self.eps * torch.tanh(self.w) if self.parametrization == "tanh" else self.w

    @torch.no_grad()
    def project_(self) -> None:
        if self.parametrization == "tanh":
            return
        if self.norm == "inf":
            self.w.clamp_(-self.eps, self.eps)
        else:
            self.w.mul_((self.eps / self.w.norm().clamp_min(1e-12)).clamp(max=1.0))

    @torch.no_grad()
    def scaled(self, eps: float) -> "AdditivePerturbation":
        """A copy whose ``delta`` is this one's times ``eps / self.eps`` (same direction, new bound)."""
        out = AdditivePerturbation(self.config["size"], eps, self.norm, "projected").to(self.w.device)
        out.w.copy_(self.delta() * (eps / self.eps))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.delta().to(x.dtype)
        if d.shape[-2:] != x.shape[-2:]:
            d = F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return (x + d).clamp(0, 1)


def save_program(path, program: InputProgram, **metadata) -> None:
    """Save a program's tensors and config, plus any JSON metadata, as one safetensors file."""
    meta = {"program": type(program).__name__, "config": program.config, **metadata}
    save_artifact(path, program.state_dict(), meta)


def load_program(path) -> tuple[InputProgram, dict]:
    """Load ``(program, metadata)`` saved by :func:`save_program` (no pickle)."""
    tensors, meta = load_artifact(path)
    cls = PROGRAMS.get(meta.get("program", ""))
    if cls is None:
        raise ValueError(f"{path}: unknown program type {meta.get('program')!r}; "
                         f"known: {', '.join(PROGRAMS)}")
    program = cls(**meta["config"])
    program.load_state_dict(tensors)
    return program, meta
