from pathlib import Path

import pytest

from reprolab.config import ENV_VAR, data_root, require


def test_argument_beats_env_beats_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "cache" / "reprolab" / "data"


def test_missing_path_error_names_path_and_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*REPROLAB_DATA"):
        require(Path(tmp_path / "nowhere"), "MNIST file")
