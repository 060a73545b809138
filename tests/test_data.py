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
    assert torch.equal((x.flatten(1).sum(1) / 49).round().long(), y + 1)  # 7x7 white per square
    assert set(y.tolist()) == set(range(10))
    # squares sit on the 4x4 grid of 9x9 cells: a black frame, the inside all-on or all-off
    cells = x.view(500, 4, 9, 4, 9)
    inside = cells[:, :, 1:8, :, 1:8]
    assert torch.equal(inside.amin((2, 4)), inside.amax((2, 4)))
    assert cells[:, :, [0, 8]].max() == 0 and cells[..., [0, 8]].max() == 0
    assert torch.equal(data.counting_squares(500, seed=3)[0], x)  # seeded
    unframed, y0 = data.counting_squares(500, seed=3, frame=0)
    assert torch.equal((unframed.flatten(1).sum(1) / 81).round().long(), y0 + 1)


def _layouts(x):
    lit = x.view(-1, 4, 9, 4, 9).amax((2, 4)).flatten(1) > 0
    return set((lit.long() << torch.arange(16)).sum(1).tolist())


def test_squares_heldout_layouts_never_seen_in_training():
    train, _ = data.load_task("squares", "train")
    held, yh = data.load_task("squares", "heldout")
    assert len(train) == 8000 and len(held) == 2000 and set(yh.tolist()) == set(range(10))
    assert not _layouts(train) & _layouts(held)
    assert _layouts(held) <= set(data.heldout_layouts().nonzero().squeeze(1).tolist())
    # without a split both sides are drawn from, so a large sample overlaps the held-out layouts
    assert _layouts(data.counting_squares(2000, seed=1)[0]) & _layouts(held)


def test_counting_squares_bad_input():
    with pytest.raises(ValueError, match="unknown split"):
        data.counting_squares(4, split="test")
    with pytest.raises(ValueError, match="frame=5"):
        data.counting_squares(4, frame=5)
    with pytest.raises(ValueError, match="max_count=17"):
        data.counting_squares(4, max_count=17)


def test_images_split_and_grayscale(data_dir):
    x, y = data.load_images(size=64, crop=0.875)
    craft, yc = data.load_images(size=64, split="craft")
    held, yh = data.load_images(size=64, split="heldout")
    assert x.shape == (500, 3, 64, 64) and len(craft) == len(held) == 250
    assert not set(yc.tolist()) & set(yh.tolist())  # one photo per class: disjoint classes
    assert sorted(yc.tolist() + yh.tolist()) == sorted(y.tolist())


def test_a_split_decodes_only_its_own_photos(tmp_path):
    """A copy holding only the crafting photos (and the full labels.csv) still loads them."""
    from PIL import Image

    rows = ["file,class_index"]
    for i in range(6):
        Image.new("RGB", (40, 30), (40 * i, 0, 0)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{i}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    held, yh = data.load_images(tmp_path, size=16, split="heldout")
    craft, yc = data.load_images(tmp_path, size=16, split="craft")
    for i in yh.tolist():
        (tmp_path / f"{i}.png").unlink()
    craft2, yc2 = data.load_images(tmp_path, size=32, split="craft")  # not cached: decoded again
    assert yc.tolist() == yc2.tolist() and len(craft2) == 3 and set(yc.tolist()).isdisjoint(yh.tolist())
    with pytest.raises(FileNotFoundError, match="missing"):
        data.load_images(tmp_path, size=32, split="heldout")


def test_unlabelled_folder_and_empty_folder(tmp_path):
    from PIL import Image

    with pytest.raises(ValueError, match="no images"):
        data.load_images(tmp_path, size=32)
    Image.new("L", (50, 40), 128).save(tmp_path / "a.png")  # grayscale -> RGB
    x, y = data.load_images(tmp_path, size=32)
    assert x.shape == (1, 3, 32, 32) and y.tolist() == [-1]
    with pytest.raises(FileNotFoundError, match="image folder"):
        data.load_images(tmp_path / "missing")


def test_a_model_brings_its_own_size_and_crop(tmp_path, tiny_model):
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 10, 10)).save(tmp_path / "a.png")
    tiny_model.crop = 0.5
    x, _ = data.load_images(tmp_path, model=tiny_model)
    assert torch.equal(x, data.load_images(tmp_path, size=32, crop=0.5)[0]) and x.shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="model= or size= and crop=, not both"):
        data.load_images(tmp_path, size=64, model=tiny_model)


def test_bad_split_names():
    with pytest.raises(ValueError, match="unknown split"):
        data.load_digits("validation")


def _sample_archive(path, n_classes=1000):
    """A stand-in for the public sample's zip: one tiny JPEG per class, in a shuffled order."""
    import zipfile
    from io import BytesIO

    from PIL import Image

    with zipfile.ZipFile(path, "w") as z:
        for i in torch.randperm(n_classes, generator=torch.Generator().manual_seed(0)).tolist():
            buf = BytesIO()
            Image.new("RGB", (12, 10), (i % 256, 0, 0)).save(buf, "JPEG")
            z.writestr(f"imagenet-sample-images-master/n{i:08d}_class_{i}.JPEG", buf.getvalue())
    return path.as_uri()


def test_download_imagenet_sample_lays_out_the_shared_sample(tmp_path, monkeypatch):
    monkeypatch.delenv("REPROLAB_OFFLINE", raising=False)
    url = _sample_archive(tmp_path / "sample.zip")
    folder = data.download_imagenet_sample(tmp_path / "root", url=url)
    assert folder == tmp_path / "root" / "imagenet-sample"
    x, y = data.load_images(size=8, root=tmp_path / "root")
    assert y.tolist() == list(range(0, 1000, 2))  # the even classes, indexed by sorted wnid
    assert x.shape == (500, 3, 8, 8)
    assert not [p for p in (tmp_path / "root").iterdir() if p.name != "imagenet-sample"]  # no temp left
    # present: nothing is fetched again (the URL is not even read)
    assert data.download_imagenet_sample(tmp_path / "root", url="file:///nonexistent.zip") == folder


def test_download_imagenet_sample_refuses_offline_and_incomplete_archives(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLAB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="REPROLAB_OFFLINE"):
        data.load_images(root=tmp_path, download=True)
    monkeypatch.delenv("REPROLAB_OFFLINE")
    url = _sample_archive(tmp_path / "short.zip", n_classes=999)
    with pytest.raises(ValueError, match="1000 ImageNet classes"):
        data.download_imagenet_sample(tmp_path / "root", url=url)
    assert not (tmp_path / "root" / "imagenet-sample").exists()
