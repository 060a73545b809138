"""Programs: the learnable inputs. Each maps a batch of images to model inputs in [0, 1].

A program is an ``nn.Module`` whose parameters are the only thing ever trained; the
classifier stays frozen. ``project_()`` is called after every optimiser step to
enforce constraints that the parametrisation does not already guarantee.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .artifacts import ArtifactError, load_artifact, save_artifact

PROGRAMS: dict[str, type["InputProgram"]] = {}


class InputProgram(nn.Module):
    """Base class: subclasses set ``self.config`` (constructor kwargs) and implement forward."""

    config: dict
    # tensor names a subclass used to have -> their names now, so files saved before a rename still load
    renamed: dict[str, str] = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        PROGRAMS[cls.__name__] = cls  # so artifacts can be loaded back by class name

    @classmethod
    def upgrade(cls, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A state dict with any tensor names from before a rename (``renamed``) given their names now."""
        return {cls.renamed.get(k, k): v for k, v in tensors.items()}

    def project_(self) -> None:
        """Enforce constraints in place after an optimiser step (default: none)."""

    def check(self) -> None:
        """Raise a ``ValueError`` if the values break the program's own constraints (default: none).

        :func:`load_program` calls it, so a file edited or damaged on disk is refused.
        """


def check_eps(eps: float, norm: str = "inf") -> float:
    """``eps`` as a float if it is a valid bound: in (0, 1] for L-inf, > 0 for L2."""
    if not eps > 0 or not math.isfinite(eps) or (norm == "inf" and eps > 1):
        shown = f"{eps:.4g}" if isinstance(eps, (int, float)) else repr(eps)
        raise ValueError(f"eps must be in (0, 1] in [0, 1] pixel units (L2: finite, > 0), got {shown}; "
                         "for 10 on the 0-255 scale pass 10/255")
    return float(eps)


# The square root of ImageNet's RGB covariance (the matrix feature visualisation uses, Olah et al.
# 2017), scaled so its largest column has norm 1: uncorrelated channels in, natural colours out.
_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOUR_SQRT = _SQRT / _SQRT.norm(dim=0).max()


def spectrum_scale(size: int, decay: float = 1.0) -> torch.Tensor:
    """``1 / f ** decay`` for each frequency of a ``size`` x ``size`` real FFT, ``(size, size // 2 + 1)``.

    Natural images' spectra fall off about as ``1 / f``. Adam moves every coefficient of
    the learned spectrum by about the same amount, so scaling them by ``1 / f`` makes its
    steps natural-looking, smooth images rather than pixel noise. The constant term is
    scaled as the lowest non-zero frequency, ``1 / size``; the whole is divided by its root
    mean square, so a step moves pixels about as much as a step on pixels would.

    >>> spectrum_scale(224).pow(2).mean().sqrt().item()
    1.0
    >>> s = spectrum_scale(4); bool(s[1, 1] > s[2, 2])   # lower frequencies get more
    True
    """
    fy, fx = torch.fft.fftfreq(size)[:, None], torch.fft.rfftfreq(size)[None, :]
    scale = (fx ** 2 + fy ** 2).sqrt().clamp_min(1.0 / size) ** -decay
    return scale / scale.pow(2).mean().sqrt()


class AdditivePerturbation(InputProgram):
    """One universal change ``delta`` added to every image: ``clamp(x + delta, 0, 1)``.

    Args:
        size: height and width of ``delta`` (a model's ``input_size``).
        eps: the bound on ``delta`` in [0, 1] pixel units.
        norm: ``"inf"`` (``|delta| <= eps`` per pixel) or ``"2"`` (``||delta||_2 <= eps``).
        parametrization: ``"tanh"``: ``delta = eps * tanh(w)`` (L-inf only, bounded by
            construction); ``"fourier"``: ``delta = eps * tanh(colour(irfft2(w / f)))``,
            ``w`` a spectrum scaled by one over its frequency ``f`` and ``colour`` mixing
            decorrelated channels into RGB (feature visualisation's parametrisation,
            Olah et al. 2017; L-inf only, bounded by construction); or ``"projected"``:
            ``delta`` is the parameter, projected onto the eps-ball after every step.

        n: number of perturbations learned side by side (one per target class in a
            gallery); every image is paired with every perturbation.

    Shape:
        input ``(N, 3, H, W)`` in [0, 1]; output the same for ``n = 1``, else
        ``(n * N, 3, H, W)``, perturbation-major (``out[k * N + i] = x[i] + delta[k]``).
        If ``H, W`` differ from ``size``, ``delta`` is resized bilinearly (for transfer
        to other models).

    Example:
        >>> import torch
        >>> program = AdditivePerturbation(32, eps=10 / 255, n=2)
        >>> _ = torch.nn.init.normal_(program.w, std=5.0)   # far outside the bound
        >>> bool(program.delta().abs().max() <= 10 / 255)   # tanh keeps it inside
        True
        >>> program(torch.rand(4, 3, 32, 32)).shape          # 2 perturbations x 4 images
        torch.Size([8, 3, 32, 32])
    """

    def __init__(self, size: int, eps: float, norm: str = "inf", parametrization: str = "tanh", n: int = 1):
        super().__init__()
        if norm not in ("inf", "2"):
            raise ValueError(f"unknown norm {norm!r}; use 'inf' or '2'")
        if parametrization not in ("tanh", "fourier", "projected"):
            raise ValueError(f"unknown parametrization {parametrization!r}; use 'tanh', 'fourier' or 'projected'")
        if parametrization != "projected" and norm != "inf":
            raise ValueError(f"the {parametrization} parametrization bounds L-inf only; "
                             "use parametrization='projected' for norm '2'")
        if n < 1:
            raise ValueError(f"n (the number of perturbations) must be >= 1, got {n}")
        self.config = dict(size=int(size), eps=check_eps(eps, norm), norm=norm, parametrization=parametrization,
                           n=int(n))
        self.eps, self.norm, self.parametrization = self.config["eps"], norm, parametrization
        if parametrization == "fourier":  # real and imaginary parts of each channel's half spectrum
            self.w = nn.Parameter(torch.zeros(n, 3, size, size // 2 + 1, 2))
            self.register_buffer("spectrum_scale", spectrum_scale(size), persistent=False)
            self.register_buffer("colour", COLOUR_SQRT.clone(), persistent=False)  # moves with the program
        else:
            self.w = nn.Parameter(torch.zeros(n, 3, size, size))

    @classmethod
    def random_noise(cls, size: int, eps: float, seed: int = 0) -> "AdditivePerturbation":
        """Random +-eps at every pixel: the L-inf ball's corners, the baseline every fooling rate is read against.

        >>> noise = AdditivePerturbation.random_noise(8, eps=10 / 255)
        >>> bool((noise.delta().abs() == 10 / 255).all())
        True
        """
        noise = cls(size, eps, parametrization="projected")
        signs = torch.randint(0, 2, noise.w.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        with torch.no_grad():
            noise.w.copy_(noise.eps * signs)
        return noise

    def delta(self) -> torch.Tensor:
        """The perturbations, ``(n, 3, size, size)``."""
        if self.parametrization == "fourier":
            size = self.config["size"]
            spectrum = torch.view_as_complex(self.w.float().contiguous()) * self.spectrum_scale
            channels = torch.fft.irfft2(spectrum, s=(size, size), norm="ortho")
            rgb = torch.einsum("ij,njhw->nihw", self.colour, channels)
            return (self.eps * torch.tanh(rgb)).to(self.w.dtype)
        return self.eps * torch.tanh(self.w) if self.parametrization == "tanh" else self.w

    @torch.no_grad()
    def project_(self) -> None:
        if self.parametrization != "projected":
            return
        if self.norm == "inf":
            self.w.clamp_(-self.eps, self.eps)
        else:
            norms = self.w.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            self.w.mul_((self.eps / norms).clamp(max=1.0))

    @torch.no_grad()
    def check(self) -> None:
        if self.parametrization != "projected":
            return  # bounded by construction
        d = self.w.detach().float()
        size = d.abs().flatten(1).amax(1) if self.norm == "inf" else d.flatten(1).norm(dim=1)
        # float16 copies (the zoo) round eps-sized values by up to 2**-11 of themselves
        worst = int(size.argmax())
        if size[worst] > self.eps * (1 + 2e-3) + 1e-6:
            what = "max |delta|" if self.norm == "inf" else "||delta||_2"
            raise ValueError(f"perturbation {worst} breaks its recorded bound: {what} = {size[worst]:.4g} "
                             f"> eps = {self.eps:.4g} (L{self.norm})")

    @torch.no_grad()
    def scaled(self, eps: float) -> "AdditivePerturbation":
        """A copy whose ``delta`` is this one's times ``eps / self.eps`` (same direction, new bound)."""
        out = AdditivePerturbation(self.config["size"], eps, self.norm, "projected", len(self.w)).to(self.w.device)
        out.w.copy_(self.delta() * (eps / self.eps))
        return out

    @torch.no_grad()
    def select(self, k: int | list[int]) -> "AdditivePerturbation":
        """Perturbation ``k`` alone (``n = 1``), or those listed in ``k``, as a new program."""
        keep = [k] if isinstance(k, int) else list(k)
        out = AdditivePerturbation(self.config["size"], self.eps, self.norm, "projected", len(keep))
        out.w.copy_(self.delta()[keep])
        return out.to(self.w.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.delta().to(x.dtype)
        if d.shape[-2:] != x.shape[-2:]:
            d = F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if len(d) == 1:
            return (x + d).clamp(0, 1)
        return (x[None] + d[:, None]).clamp(0, 1).flatten(0, 1)


def save_program(path, program: InputProgram, **metadata) -> None:
    """Save a program's tensors and config, plus any JSON metadata, as one safetensors file."""
    meta = {"program": type(program).__name__, "config": program.config, **metadata}
    save_artifact(path, program.state_dict(), meta)


def load_program(path) -> tuple[InputProgram, dict]:
    """Load ``(program, metadata)`` saved by :func:`save_program` (no pickle).

    The file is refused with an :class:`~reprolab.artifacts.ArtifactError` (a
    ``ValueError``) naming it and the problem if its metadata does not describe a known
    program, its tensors do not match that program (missing, renamed, wrong shape),
    any value is NaN or infinite, or the values break the program's recorded
    constraints (e.g. a perturbation larger than its ``eps``).
    """
    tensors, meta = load_artifact(path)
    name, config = meta.get("program"), meta.get("config")
    cls = PROGRAMS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ArtifactError(f"{path}: unknown program type {name!r} in its metadata; "
                            f"known: {', '.join(PROGRAMS)}")
    tensors = cls.upgrade(tensors)
    if not isinstance(config, dict):
        raise ArtifactError(f"{path}: its metadata has no 'config' object for {name} (got {config!r})")
    try:
        program = cls(**config)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ArtifactError(f"{path}: its metadata 'config' {config} does not make a {name}: {e}") from e
    expected = program.state_dict()
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ArtifactError(f"{path}: its tensors do not match the program {name}: missing {missing}, "
                            f"unexpected {extra}")
    for key, value in tensors.items():
        if value.shape != expected[key].shape:
            raise ArtifactError(f"{path}: tensor {key!r} has shape {tuple(value.shape)}, but its config "
                                f"makes a {name} that needs {tuple(expected[key].shape)}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ArtifactError(f"{path}: tensor {key!r} holds NaN or infinite values")
        if value.is_floating_point() != expected[key].is_floating_point():
            raise ArtifactError(f"{path}: tensor {key!r} is {value.dtype}, expected {expected[key].dtype}")
    program.load_state_dict(tensors)
    try:
        program.check()
    except ValueError as e:
        raise ArtifactError(f"{path}: {e}") from e
    return program, meta


class ReprogrammingFrame(InputProgram):
    """Adversarial reprogramming (Elsayed et al. 2019): a learned frame around a small image.

    ``P = tanh(w * M)`` (the paper's ``W``) where the mask ``M`` is 0 where the task image sits. The program
    works in [0, 1] pixel space, so the frame spans the whole valid range:
    ``x_adv = M * (P + 1) / 2 + (1 - M) * pad(x)`` (this equals the paper's
    ``tanh(W * M) + pad(x)`` on [-1, 1] inputs). Adding the frame *after* the model's
    normalisation, as one public reimplementation does, shrinks it to about +-0.23 around
    black (``benchmarks/reimplementation.py`` measures what that and its learning-rate decay cost).

    The program also owns the output side, a label mapping ``label_map`` of shape
    ``(n_task, m)``: task class ``i`` is scored by the mean logit of the ImageNet
    classes ``label_map[i]`` (see :mod:`reprolab.reprogramming` for how mappings are chosen).

    Args:
        size: canvas side (the model's input size, or a multiple of 32 it accepts).
        image_size: side the task image is resized to before it is placed.
        n_task: number of task classes; m: ImageNet classes per task class.
        position: ``(top, left)`` of the image; default: centred.

    Shape:
        input ``(N, 1 or 3, h, w)`` task images in [0, 1]; output ``(N, 3, size, size)``.
    """

    renamed = {"W": "w", "index": "label_map"}  # their names in files saved before the rename

    def __init__(self, size: int, image_size: int, n_task: int, m: int = 1,
                 position: tuple[int, int] | None = None):
        super().__init__()
        if image_size > size:
            raise ValueError(f"the task image ({image_size}px) is larger than the canvas ({size}px); "
                             "use a smaller image_size or a larger canvas")
        top, left = position if position is not None else ((size - image_size) // 2,) * 2
        if not (0 <= top <= size - image_size and 0 <= left <= size - image_size):
            raise ValueError(f"position {(top, left)} puts the {image_size}px image outside the {size}px canvas")
        self.config = dict(size=int(size), image_size=int(image_size), n_task=int(n_task), m=int(m),
                           position=[int(top), int(left)])
        self.top, self.left, self.image_size = top, left, image_size
        self.w = nn.Parameter(torch.zeros(1, 3, size, size))
        mask = torch.ones(1, 1, size, size)
        mask[..., top:top + image_size, left:left + image_size] = 0
        self.register_buffer("M", mask)
        self.register_buffer("label_map", torch.arange(n_task * m).view(n_task, m))  # first-k by default

    @torch.no_grad()
    def check(self) -> None:
        size, top, left, k = self.config["size"], self.top, self.left, self.image_size
        mask = torch.ones_like(self.M)
        mask[..., top:top + k, left:left + k] = 0
        if not torch.equal(self.M, mask):
            raise ValueError(f"the mask M does not match the recorded image position {self.config['position']} "
                             f"and size {k} in the {size}px canvas")
        if self.label_map.numel() and int(self.label_map.min()) < 0:
            raise ValueError(f"the label mapping 'label_map' holds negative class ids ({int(self.label_map.min())})")

    def frame(self) -> torch.Tensor:
        """The learned frame in pixel space, ``(1, 3, size, size)``; 0.5 (grey) inside the hole."""
        return (torch.tanh(self.w * self.M) + 1) / 2

    def place(self, x: torch.Tensor) -> torch.Tensor:
        """The task images resized and placed on a black canvas, ``(N, 3, size, size)``: ``pad(x)``."""
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"task images must be (N, 1 or 3, h, w), got {tuple(x.shape)}")
        x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", align_corners=False)
        x = x.expand(-1, 3, -1, -1)
        s = self.w.shape[-1]
        return F.pad(x, (self.left, s - self.left - self.image_size, self.top, s - self.top - self.image_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.M * self.frame() + (1 - self.M) * self.place(x)).clamp(0, 1)

    def map_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """ImageNet logits ``(N, 1000)`` -> task logits ``(N, n_task)`` through the label mapping."""
        return logits[:, self.label_map].mean(2)
