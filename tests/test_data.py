import pytest
import torch

from reprolab import data


def test_mnist_offline_split(data_dir):
    x, y = data.load_mnist("train")
    xh, yh = data.load_mnist("heldout")
    assert x.shape == (8000, 1, 28, 28) and xh.shape == (2000, 1, 28, 28)
    assert 0 <= x.min() and x.max() == 1 and x.dtype == torch.float32
    assert y[:5].tolist() == [7, 2, 1, 0, 4]  # the official test set's first labels
    assert set(yh.tolist()) == set(range(10))


def test_mnist_missing_and_corrupt(tmp_path, data_dir):
    with pytest.raises(FileNotFoundError, match=r"mnist.*t10k.*REPROLAB_DATA"):
        data.load_mnist(root=tmp_path)
    (tmp_path / "mnist").mkdir()
    for name in data.MNIST_MD5:
        (tmp_path / "mnist" / name).write_bytes((data_dir / "mnist" / name).read_bytes()[:-1] + b"x")
    with pytest.raises(ValueError, match="corrupt"):
        data.load_mnist(root=tmp_path)


def test_digits_split():
    x, y = data.load_digits("train")
    xh, yh = data.load_digits("heldout")
    assert x.shape[1:] == (1, 8, 8) and len(x) + len(xh) == 1797
    assert x.max() == 1.0 and x.min() == 0.0


def test_counting_squares_labels_match_pixels():
    x, y = data.counting_squares(500, seed=3)
    assert x.shape == (500, 1, 36, 36)
    assert torch.equal((x.flatten(1).sum(1) / 81).round().long(), y + 1)
    assert set(y.tolist()) == set(range(10))
    # squares sit on the 4x4 grid of 9x9 cells: each cell is all-on or all-off
    cells = x.view(500, 4, 9, 4, 9)
    assert torch.equal(cells.amin((2, 4)), cells.amax((2, 4)))
    assert torch.equal(data.counting_squares(500, seed=3)[0], x)  # seeded


def test_images_split_and_grayscale(data_dir):
    x, y = data.load_images(size=64, crop=0.875)
    craft, yc = data.load_images(size=64, split="craft")
    held, yh = data.load_images(size=64, split="heldout")
    assert x.shape == (500, 3, 64, 64) and len(craft) == len(held) == 250
    assert not set(yc.tolist()) & set(yh.tolist())  # one photo per class: disjoint classes
    assert sorted(yc.tolist() + yh.tolist()) == sorted(y.tolist())


def test_unlabelled_folder_and_empty_folder(tmp_path):
    from PIL import Image

    with pytest.raises(ValueError, match="no images"):
        data.load_images(tmp_path, size=32)
    Image.new("L", (50, 40), 128).save(tmp_path / "a.png")  # grayscale -> RGB
    x, y = data.load_images(tmp_path, size=32)
    assert x.shape == (1, 3, 32, 32) and y.tolist() == [-1]
    with pytest.raises(FileNotFoundError, match="image folder"):
        data.load_images(tmp_path / "missing")


def test_bad_split_names():
    with pytest.raises(ValueError, match="unknown split"):
        data.load_digits("validation")
