import pytest
import torch
from safetensors.torch import save_file

from reprolab.artifacts import atomic_write, load_artifact, save_artifact


def test_round_trip(tmp_path):
    path = save_artifact(tmp_path / "a.safetensors", {"v": torch.arange(3.0)}, {"eps": 0.1, "tags": ["x"]})
    tensors, meta = load_artifact(path)
    assert torch.equal(tensors["v"], torch.arange(3.0)) and meta == {"eps": 0.1, "tags": ["x"]}


def test_failed_write_keeps_the_old_file(tmp_path):
    path = save_artifact(tmp_path / "a.safetensors", {"v": torch.zeros(2)}, {"n": 1})

    def broken(tmp):
        open(tmp, "wb").write(b"half")
        raise KeyboardInterrupt  # killed mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, broken)
    assert load_artifact(path)[1] == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]


def test_written_files_get_a_new_files_mode_not_a_private_one(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "r.json", lambda tmp: open(tmp, "w").write("{}"))
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(TypeError):
        save_artifact(tmp_path / "a.safetensors", {"v": torch.zeros(1)}, {"bad": object()})
    assert not any(tmp_path.iterdir())


def test_foreign_and_missing_files(tmp_path):
    save_file({"v": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not a reprolab artifact"):
        load_artifact(tmp_path / "plain.safetensors")
    with pytest.raises(FileNotFoundError):
        load_artifact(tmp_path / "missing.safetensors")
