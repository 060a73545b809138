"""Where reprolab finds its data.

One setting, resolved in this order: an explicit argument, then the
``REPROLAB_DATA`` environment variable, then ``~/.cache/reprolab/data``
(``$XDG_CACHE_HOME/reprolab/data`` when that is set).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "REPROLAB_DATA"
OFFLINE_ENV = "REPROLAB_OFFLINE"


def forced_offline() -> bool:
    """True when ``$REPROLAB_OFFLINE`` is set (to anything but 0): nothing may download."""
    return os.environ.get(OFFLINE_ENV, "0") not in ("", "0")


def data_root(path: str | os.PathLike | None = None) -> Path:
    """Return the data root: ``path`` > ``$REPROLAB_DATA`` > the user cache dir."""
    if path is not None:
        return Path(path).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "reprolab" / "data"


def require(path: Path, what: str) -> Path:
    """Return ``path`` if it exists, else raise an error that says how to provide it."""
    if not path.exists():
        raise FileNotFoundError(
            f"{what} not found at {path}. Put the files there, point the data root at the "
            f"folder that holds them (argument `root=` or the environment variable {ENV_VAR}), "
            "or use the online path (download=True) where you have network access."
        )
    return path


def in_colab() -> bool:
    """True inside Google Colab."""
    import sys

    return "google.colab" in sys.modules


def resolve_online(online: bool | None) -> bool:
    """A chapter's ``online`` parameter: ``None`` means on in Colab, off elsewhere.

    ``$REPROLAB_OFFLINE=1`` (the tests, CI, the offline book build) always means off.
    """
    if forced_offline():
        return False
    return in_colab() if online is None else bool(online)
