"""reprolab's settings, all read from the environment here.

* ``REPROLAB_DATA``: the data root, resolved in this order: an explicit argument, then
  this variable, then ``~/.cache/reprolab/data`` (``$XDG_CACHE_HOME/reprolab/data``).
* ``REPROLAB_OFFLINE``: set (to anything but 0), nothing may download.
* ``REPROLAB_PROGRESS``: ``auto`` (default), ``text`` or ``off`` for the progress bars.
* ``REPROLAB_STATIC``: set (to anything but 0) in static builds: widgets show their
  static figure only.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

ENV_VAR = "REPROLAB_DATA"
OFFLINE_ENV = "REPROLAB_OFFLINE"
PROGRESS_ENV = "REPROLAB_PROGRESS"
STATIC_ENV = "REPROLAB_STATIC"
NETWORK_TIMEOUT = 60.0  # seconds a download may wait for the server (per connection or read)


def _flag(var: str) -> bool:
    """An on/off environment setting: on when set to anything but empty or 0."""
    return os.environ.get(var, "0") not in ("", "0")


def forced_offline() -> bool:
    """True when ``$REPROLAB_OFFLINE`` is set (to anything but 0): nothing may download."""
    return _flag(OFFLINE_ENV)


def progress_mode() -> str:
    """``$REPROLAB_PROGRESS``: ``"auto"`` (notebook-aware bars), ``"text"`` or ``"off"``."""
    return os.environ.get(PROGRESS_ENV, "auto")


def static_build() -> bool:
    """True when ``$REPROLAB_STATIC`` is set (to anything but 0): no kernel will run the widgets."""
    return _flag(STATIC_ENV)


def refuse_offline(what: str, where: Path | None = None) -> None:
    """Raise at once, before any network call, if ``$REPROLAB_OFFLINE`` forbids fetching ``what``."""
    if forced_offline():
        put = f"put a copy in {where}, or " if where is not None else ""
        raise RuntimeError(f"REPROLAB_OFFLINE is set, so {what} is not downloaded; {put}unset "
                           f"REPROLAB_OFFLINE where you have network access")


@contextlib.contextmanager
def network_timeout(seconds: float = NETWORK_TIMEOUT):
    """Give sockets opened inside (e.g. by torchvision's data set downloads) a timeout, if they have none."""
    import socket

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(old if old is not None else seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def download(url: str, dst: str | os.PathLike, sha256_prefix: str | None = None,
             timeout: float = NETWORK_TIMEOUT) -> Path:
    """Fetch ``url`` into ``dst`` atomically, every wait bounded by ``timeout`` seconds.

    Refused at once under ``$REPROLAB_OFFLINE``. With ``sha256_prefix``, a file whose
    hash does not start with it is discarded and an error raised.
    """
    import hashlib
    import urllib.error
    import urllib.request

    from .artifacts import atomic_write

    refuse_offline(url, Path(dst))

    def write(tmp):
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                f.write(chunk)
                digest.update(chunk)
        if sha256_prefix and not digest.hexdigest().startswith(sha256_prefix):
            raise RuntimeError(f"the file downloaded from {url} is damaged (sha256 {digest.hexdigest()[:16]}..., "
                               f"expected {sha256_prefix}...); try again")

    try:
        return atomic_write(dst, write)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        raise RuntimeError(f"could not download {url} (timeout {timeout:.0f} s): {e}") from e


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
