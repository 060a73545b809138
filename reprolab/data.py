"""Data sets: MNIST, sklearn digits, counting squares and folders of natural photos.

Everything returns float tensors in ``[0, 1]``: images ``(N, C, H, W)`` and labels
``(N,)`` (int64). Files are read under the data root (see :mod:`reprolab.config`).
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import torch
import torch.nn.functional as F

from .config import data_root, download as fetch, forced_offline, network_timeout, refuse_offline, require

MNIST_MD5 = {
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_OFFLINE_TRAIN = 8000  # offline: first 8,000 test images train, last 2,000 are held out
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
NUM_CLASSES = 1000  # class indices in labels.csv are ImageNet's: 0-999
# online source of the shared sample: one photo per ImageNet class, named <wnid>_<name>.JPEG
IMAGENET_SAMPLE_URL = "https://github.com/EliSchwartz/imagenet-sample-images/archive/refs/heads/master.zip"


def _read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (the MNIST format) into a uint8 array."""
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _check_md5(path: Path, expected: str) -> None:
    actual = hashlib.md5(path.read_bytes()).hexdigest()
    if actual != expected:
        raise ValueError(f"{path} is corrupt (md5 {actual}, expected {expected}); "
                         "replace it with the official MNIST file")


def load_mnist(split: str = "train", root=None, download: bool = False):
    """MNIST digits as ``(x, y)`` with ``x`` of shape ``(N, 1, 28, 28)``.

    Offline (default) the official 10k test set under ``<root>/mnist`` is split into a
    fixed train part (first 8,000) and a held-out part (last 2,000). With
    ``download=True``, torchvision's full MNIST (60k train / 10k test) is used.

    Args:
        split: ``"train"`` or ``"heldout"`` (``"test"`` is an alias of ``"heldout"``).
    """
    if split not in ("train", "heldout", "test"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'heldout'")
    train = split == "train"
    if download:
        from torchvision.datasets import MNIST

        # online only: the caller asked for download=True
        ds = _torchvision_dataset(MNIST, "MNIST", root, train)
        x, y = ds.data.numpy(), ds.targets.numpy()
    else:
        folder = data_root(root) / "mnist"
        paths = {name: require(folder / name, "MNIST file") for name in MNIST_MD5}
        for name, path in paths.items():
            _check_md5(path, MNIST_MD5[name])
        x = _read_idx(paths["t10k-images-idx3-ubyte.gz"])
        y = _read_idx(paths["t10k-labels-idx1-ubyte.gz"])
        part = slice(None, MNIST_OFFLINE_TRAIN) if train else slice(MNIST_OFFLINE_TRAIN, None)
        x, y = x[part], y[part]
    return (torch.from_numpy(x.copy()).float().div_(255).unsqueeze(1),
            torch.from_numpy(y.astype(np.int64)))


def _torchvision_dataset(cls, name: str, root, train: bool):
    """A torchvision data set under ``<data root>/torchvision``, downloaded if missing (not offline)."""
    folder = data_root(root) / "torchvision"
    if forced_offline():  # a copy already there is fine; never a network call
        try:
            return cls(str(folder), train=train, download=False)
        except RuntimeError:
            refuse_offline(name, folder)
            raise
    with network_timeout():
        return cls(str(folder), train=train, download=True)


def split_indices(n: int, heldout_fraction: float = 0.5, seed: int = 0):
    """A fixed random split of ``range(n)`` into (fit, held-out) index tensors.

    >>> fit, held = split_indices(10, 0.2)
    >>> len(fit), len(held), sorted(torch.cat([fit, held]).tolist()) == list(range(10))
    (8, 2, True)
    """
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_held = max(1, round(n * heldout_fraction))
    return perm[n_held:], perm[:n_held]


def load_digits(split: str = "train"):
    """scikit-learn's 8x8 digits (1,797 images, bundled), ``x`` of shape ``(N, 1, 8, 8)``.

    A fixed 80 / 20 split (seed 0) gives the train and held-out parts.
    """
    from sklearn.datasets import load_digits as sk_digits

    if split not in ("train", "heldout", "test"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'heldout'")
    d = sk_digits()
    x = torch.from_numpy(d.images).float().div_(16).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    fit, held = split_indices(len(y), 0.2)
    idx = fit if split == "train" else held
    return x[idx], y[idx]


SQUARES_SEED = 2019  # fixes which layouts are held out; never changes with the sample seed


@functools.lru_cache(maxsize=4)
def heldout_layouts(grid: int = 4, fraction: float = 0.2) -> torch.Tensor:
    """Which of the ``2**(grid*grid)`` square layouts belong to the held-out side, as a bool mask.

    A layout is the set of lit cells, read as a bit mask (cell ``i`` is bit ``i``, row-major).
    For every count k, a fixed random ``fraction`` of the layouts with k squares (at least
    one) is held out, so held-out images show layouts never seen in training at every count.

    >>> held = heldout_layouts()
    >>> int(held[[1 << i for i in range(16)]].sum())  # 3 of the 16 one-square layouts
    3
    """
    cells = grid * grid
    if cells > 20:
        raise ValueError(f"grid={grid} has 2**{cells} layouts, too many to enumerate; use grid <= 4")
    masks = torch.arange(2**cells)
    counts = ((masks[:, None] >> torch.arange(cells)) & 1).sum(1)
    score = torch.rand(2**cells, generator=torch.Generator().manual_seed(SQUARES_SEED))
    held = torch.zeros(2**cells, dtype=torch.bool)
    for k in range(1, cells + 1):
        of_k = (counts == k).nonzero().squeeze(1)
        n_held = max(1, round(fraction * len(of_k)))
        held[of_k[score[of_k].argsort()[:n_held]]] = True
    return held


def counting_squares(n: int, seed: int = 0, split: str | None = None, grid: int = 4, cell: int = 9,
                     frame: int = 1, max_count: int = 10):
    """Counting-squares images (Elsayed et al. 2019): 1-10 white squares on a 4x4 grid.

    Each ``36x36`` image is a 4x4 grid of 9x9 cells; ``count`` of them, drawn uniformly
    from 1..10, hold a square: white with a ``frame``-pixel black frame, so neighbouring
    squares stay apart (as in the paper; with ``frame=0`` touching squares merge into one
    blob). The label is ``count - 1`` (class 0 means one square). Seeded, made on the fly.

    There are only 58,650 layouts, so independent samples repeat each other (every one-
    and two-square layout appears in 8,000 images). ``split="train"`` or ``"heldout"``
    draws only from that side of :func:`heldout_layouts`, so held-out images are layouts
    the program never saw; ``None`` draws from all.

    >>> x, y = counting_squares(3, seed=1)
    >>> x.shape, bool(((x.flatten(1).sum(1) / 49).long() == y + 1).all())
    (torch.Size([3, 1, 36, 36]), True)
    """
    if split not in (None, "train", "heldout"):
        raise ValueError(f"unknown split {split!r}; use 'train', 'heldout' or None")
    if not 0 <= 2 * frame < cell:
        raise ValueError(f"frame={frame} leaves no white inside a {cell}px cell; use 0 <= frame < {cell / 2}")
    if not 1 <= max_count <= grid * grid:
        raise ValueError(f"max_count={max_count} squares do not fit a {grid}x{grid} grid; use 1..{grid * grid}")
    g = torch.Generator().manual_seed(seed)
    bits = 1 << torch.arange(grid * grid)
    counts = torch.empty(n, dtype=torch.int64)
    on = torch.empty(n, grid * grid, dtype=torch.bool)
    todo = torch.arange(n)
    while len(todo):  # redraw the images whose layout belongs to the other side
        counts[todo] = torch.randint(1, max_count + 1, (len(todo),), generator=g)
        rank = torch.rand(len(todo), grid * grid, generator=g).argsort(1).argsort(1)
        on[todo] = rank < counts[todo, None]  # a uniformly random set of `count` cells
        if split is None:
            break
        held = heldout_layouts(grid)[(on[todo] * bits).sum(1)]
        todo = todo[held != (split == "heldout")]
    square = torch.zeros(cell, cell)
    square[frame:cell - frame, frame:cell - frame] = 1
    x = on.float().view(n, 1, grid, grid).repeat_interleave(cell, 2).repeat_interleave(cell, 3)
    return x * square.repeat(grid, grid), counts - 1


class ImageError(ValueError):
    """An image or a ``labels.csv`` row that cannot be used; the message names the file (and line)."""


def _center_crop_resize(img, size: int, crop: float) -> torch.Tensor:
    """Resize the shorter side to ``size / crop``, centre-crop ``size``, to a ``(3, s, s)`` tensor."""
    import torchvision.transforms.functional as TF

    img = TF.resize(_to_rgb(img), round(size / crop), interpolation=TF.InterpolationMode.BICUBIC)
    return TF.to_tensor(TF.center_crop(img, size)).clamp_(0, 1)


def _to_rgb(img):
    """8-bit RGB. 16-bit grey PNGs (modes ``I;16``, ``I``) are scaled down, not clipped to white."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I":
        a = np.asarray(img, dtype=np.float64) / 257  # 0..65535 -> 0..255
        img = Image.fromarray(a.clip(0, 255).round().astype(np.uint8), "L")
    return img.convert("RGB")  # some ImageNet photos are grayscale or CMYK


def _read_image(path: Path, size: int, crop: float, where: str = "") -> torch.Tensor:
    """Decode one photo; a damaged, foreign or oversized file raises :class:`ImageError` naming it."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # Pillow only warns between 1x and 2x its pixel limit
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return _center_crop_resize(img, size, crop)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{path}{where}: refused, too many pixels for a photo ({e})") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # UnidentifiedImageError is an OSError
        raise ImageError(f"{path}{where}: cannot decode the image ({type(e).__name__}: {e}); it is damaged, "
                         "truncated or not an image: replace or remove it") from e


def _label_rows(table: Path, folder: Path) -> tuple[list[Path], list[int], list[int]]:
    """``(paths, class indices, line numbers)`` from a ``labels.csv``, every row checked."""
    try:
        with open(table, newline="", encoding="utf-8-sig") as f:  # -sig: a BOM from Excel is fine
            reader = csv.DictReader(f)
            rows = [(reader.line_num, r) for r in reader]
            columns = reader.fieldnames
    except UnicodeDecodeError as e:
        raise ImageError(f"{table} is not UTF-8 text ({e})") from e
    if not columns:
        raise ImageError(f"{table} is empty; it needs a header line file,class_index and one row per image")
    missing = {"file", "class_index"} - {c.strip() for c in columns if c}
    if missing:
        raise ImageError(f"{table} needs the columns file,class_index; missing {sorted(missing)}")
    if not rows:
        raise ImageError(f"{table} has a header but no rows; add one line per image (file,class_index), "
                         "or delete it to use every image in the folder unlabelled")
    paths, labels, lines = [], [], []
    for line, r in rows:
        r = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else v for k, v in r.items()}
        at = f"{table} line {line}"
        name, index = r.get("file") or "", r.get("class_index") or ""
        if not name:
            raise ImageError(f"{at}: empty 'file'; every row names an image")
        if (PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute()
                or ".." in PurePosixPath(name.replace("\\", "/")).parts):
            raise ImageError(f"{at}: {name!r} points outside {folder}; give files relative to the folder, "
                             "without '..' or a leading '/'")
        if not index:
            raise ImageError(f"{at}: empty class_index for {name!r}; give the ImageNet class (0-{NUM_CLASSES - 1})")
        try:
            label = int(index)
        except ValueError:
            raise ImageError(f"{at}: class_index {index!r} is not an integer class id (0-{NUM_CLASSES - 1})") from None
        if not 0 <= label < NUM_CLASSES:
            raise ImageError(f"{at}: class_index {label} is outside 0-{NUM_CLASSES - 1}")
        paths.append(folder / name)
        labels.append(label)
        lines.append(line)
    return paths, labels, lines


def _image_files(folder: Path):
    """``(paths, labels, lines)`` from ``labels.csv`` (file,class_index,...) or, without it, every image.

    ``lines`` holds each image's line in ``labels.csv`` (``None`` without one).
    """
    table = folder / "labels.csv"
    if table.exists():
        return _label_rows(table, folder)
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return paths, [-1] * len(paths), [None] * len(paths)  # unlabelled: fooling rate works, error rate does not


@functools.lru_cache(maxsize=8)
def _decode(paths: tuple[Path, ...], size: int, crop: float, lines: tuple | None = None) -> torch.Tensor:
    lines = lines or (None,) * len(paths)
    where = [f" (labels.csv line {n})" if n is not None else "" for n in lines]
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        i = missing[0]
        raise FileNotFoundError(f"{len(missing)} image(s) listed in labels.csv are missing, e.g. "
                                f"{paths[i]}{where[i]}; restore them or delete their rows")
    return torch.stack([_read_image(p, size, crop, w) for p, w in zip(paths, where)])


def download_imagenet_sample(root=None, every: int = 2, url: str = IMAGENET_SAMPLE_URL) -> Path:
    """Online only: fetch the public ImageNet sample into ``<data root>/imagenet-sample``.

    The archive holds one photo per class, ``<wnid>_<name>.JPEG``; a class's index is
    the rank of its wnid among the 1000 sorted wnids (the standard order). Every
    ``every``-th class is kept, so the default gives the same 500 classes (0, 2, ...,
    998) as the offline shared sample, with a ``labels.csv`` in the same layout. The
    folder appears only when complete (written beside it, then renamed).
    """
    import shutil
    import tempfile
    import zipfile

    target = data_root(root) / "imagenet-sample"
    if target.exists():
        return target
    refuse_offline("the ImageNet sample", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / "sample.zip"
        fetch(url, archive)
        with zipfile.ZipFile(archive) as z:
            members = sorted((Path(n).name, n) for n in z.namelist() if n.upper().endswith(".JPEG"))
            wnids = [name.split("_")[0] for name, _ in members]
            if len(set(wnids)) != 1000 or len(wnids) != 1000:
                raise ValueError(f"{url} should hold one photo for each of the 1000 ImageNet classes; "
                                 f"found {len(wnids)} photos of {len(set(wnids))} classes")
            out = Path(tmp) / "imagenet-sample"
            out.mkdir()
            rows = []
            for index, ((name, member), wnid) in enumerate(zip(members, wnids)):
                if index % every == 0:
                    (out / name).write_bytes(z.read(member))
                    rows.append((name, index, wnid))
        with open(out / "labels.csv", "w", newline="") as f:
            csv.writer(f).writerows([("file", "class_index", "wnid"), *rows])
        shutil.move(str(out), target)
    return target


def load_images(folder=None, size: int | None = None, split: str = "all", crop: float | None = None,
                heldout_fraction: float = 0.5, root=None, download: bool = False, model=None):
    """Natural photos as ``(x, y)``, ``x`` of shape ``(N, 3, size, size)``.

    Args:
        folder: a folder with a ``labels.csv`` (``file,class_index,...``) or just images
            (labels are then ``-1``). Default: ``<data root>/imagenet-sample``.
        model: a :class:`~reprolab.models.FrozenClassifier`: its input size and its
            evaluation crop (the usual way to call this).
        size, crop: or give them yourself: resize the shorter side to ``size / crop``,
            then centre-crop ``size`` (default 224 and 0.875).
        split: ``"all"``, ``"craft"`` (images for crafting programs) or ``"heldout"``
            (never used for crafting; report numbers here). The split is a fixed
            permutation (seed 0); with the shared sample it is 250 / 250.
        download: online only: when the default sample is missing, fetch it
            (:func:`download_imagenet_sample`).
    """
    if model is not None:
        if size is not None or crop is not None:
            raise ValueError("pass model= or size= and crop=, not both: the model sets its own size and crop")
        size, crop = model.input_size, model.crop
    size, crop = 224 if size is None else size, 0.875 if crop is None else crop
    if folder is None:
        folder = download_imagenet_sample(root) if download else data_root(root) / "imagenet-sample"
    folder = require(Path(folder), "image folder")
    if split not in ("all", "craft", "heldout"):
        raise ValueError(f"unknown split {split!r}; use 'all', 'craft' or 'heldout'")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; pass the folder that holds the photos (and labels.csv)")
    if int(size) < 1 or not 0 < float(crop) <= 1:
        raise ValueError(f"size must be >= 1 and crop in (0, 1], got size={size}, crop={crop}")
    paths, labels, lines = _image_files(folder.resolve())
    if not paths:
        raise ValueError(f"no images in {folder}; expected .jpg/.png files or a labels.csv")
    idx = torch.arange(len(paths))
    if split != "all":  # decode only the split asked for (the other half may even be absent)
        if len(paths) < 2:
            raise ValueError(f"{folder} holds 1 image; the {split!r} split needs at least 2 (or use split='all')")
        fit, held = split_indices(len(paths), heldout_fraction)
        idx = (fit if split == "craft" else held).sort().values
    x = _decode(tuple(paths[i] for i in idx.tolist()), int(size), float(crop), tuple(lines[i] for i in idx.tolist()))
    return x.clone(), torch.tensor(labels, dtype=torch.int64)[idx]


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinearly resize a batch ``(N, C, H, W)`` to ``(N, C, size, size)``, kept in [0, 1]."""
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True).clamp_(0, 1)


TASKS = {"mnist": 10, "digits": 10, "squares": 10, "cifar10": 10}


def load_task(name: str, split: str = "train", root=None, download: bool = False):
    """A small-image task for reprogramming as ``(x, y)``: mnist, digits, squares or cifar10.

    ``squares`` draws 8,000 training images (seed 0) or 2,000 held-out ones (seed 1),
    from disjoint sets of layouts (see :func:`counting_squares`).
    ``cifar10`` needs ``download=True`` (torchvision; online only).
    """
    if name == "mnist":
        return load_mnist(split, root=root, download=download)
    if name == "digits":
        return load_digits(split)
    if name == "squares":
        if split == "train":
            return counting_squares(8000, seed=0, split="train")
        return counting_squares(2000, seed=1, split="heldout")
    if name == "cifar10":
        if not download:
            raise ValueError("cifar10 is online only: pass download=True (--download on the command line; "
                             "needs network access)")
        from torchvision.datasets import CIFAR10

        ds = _torchvision_dataset(CIFAR10, "CIFAR-10", root, split == "train")
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float().div_(255)
        return x, torch.tensor(ds.targets, dtype=torch.int64)
    raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
