"""Artifacts: one ``.safetensors`` file with tensors and JSON metadata, written atomically.

No pickle anywhere: safetensors holds only tensors, and the metadata is JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

_META_KEY = "reprolab"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it a new file's mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_artifact(path, tensors: dict[str, torch.Tensor], metadata: dict) -> Path:
    """Save tensors and JSON-serialisable metadata to ``path`` atomically."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    text = json.dumps(metadata)  # fails early, before anything is written, if not JSON
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={_META_KEY: text}))


class ArtifactError(ValueError):
    """A file that is not a readable reprolab artifact; the message names the file and the problem."""


def load_artifact(path) -> tuple[dict[str, torch.Tensor], dict]:
    """Load ``(tensors, metadata)`` saved by :func:`save_artifact`.

    Raises :class:`FileNotFoundError` if there is no file, and :class:`ArtifactError` (a
    ``ValueError``) naming the file if it is truncated, not a safetensors file, not a
    reprolab artifact, or its metadata is not a JSON object.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.is_dir():
        raise ArtifactError(f"{path} is a folder, not an artifact file (a gallery folder? "
                            "use reprolab.gallery.load_gallery)")
    if not path.is_file():
        raise FileNotFoundError(f"no artifact at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = (f.metadata() or {}).get(_META_KEY)
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        size = path.stat().st_size
        raise ArtifactError(f"{path} is not a readable safetensors file ({size} bytes: {e}); it may be "
                            "truncated or not an artifact at all: save or download it again") from e
    if meta is None:
        raise ArtifactError(f"{path} is a safetensors file but not a reprolab artifact (no metadata)")
    try:
        meta = json.loads(meta)
    except ValueError as e:
        raise ArtifactError(f"{path}: its reprolab metadata is not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise ArtifactError(f"{path}: its reprolab metadata should be a JSON object, got {type(meta).__name__}")
    return tensors, meta
