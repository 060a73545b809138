import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from reprolab.augment import RandomViews, blur_matrix, crop_boxes, random_views, resample_matrix


def test_full_crop_without_flip_is_the_identity_and_with_flip_a_mirror():
    x = torch.rand(3, 3, 40, 56)
    assert torch.allclose(random_views(x, scale=(1, 1), flip=0, ratio=(1, 1)), x, atol=1e-5)
    assert torch.allclose(random_views(x, scale=(1, 1), flip=1, ratio=(1, 1)), x.flip(-1), atol=1e-5)


def test_resample_matrix_samples_like_grid_sample():
    torch.manual_seed(0)
    x = torch.rand(5, 3, 48, 64)
    cx, cy, w, h = crop_boxes(5, (0.2, 0.9)).unbind(1)
    flip = torch.tensor([True, False, True, False, False])
    theta = torch.zeros(5, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * torch.where(flip, -1.0, 1.0), 2 * cx - 1
    theta[:, 1, 1], theta[:, 1, 2] = h, 2 * cy - 1
    expected = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False),
                             align_corners=False, padding_mode="border")
    ry = resample_matrix(48 * (cy - h / 2), 48 * h, 48, 48)
    rx = resample_matrix(64 * (cx - w / 2), 64 * w, 64, 64, flip)
    assert torch.allclose(ry[:, None] @ x @ rx[:, None].transpose(-1, -2), expected, atol=1e-5)


def test_blur_matrix_matches_torchvision_gaussian_blur():
    x = torch.rand(2, 3, 20, 30)
    sigma = torch.tensor([0.4, 1.3])
    expected = torch.stack([TF.gaussian_blur(xi, [5, 5], [s.item()] * 2) for xi, s in zip(x, sigma)])
    got = blur_matrix(sigma, 20)[:, None] @ x @ blur_matrix(sigma, 30)[:, None].transpose(-1, -2)
    assert torch.allclose(got, expected, atol=1e-5)


def test_crop_boxes_fit_the_image_and_keep_the_area_range():
    cx, cy, w, h = crop_boxes(20_000, (0.35, 1.0)).unbind(1)
    assert ((w <= 1) & (h <= 1) & (cx - w / 2 >= 0) & (cx + w / 2 <= 1 + 1e-6)).all()
    area = w * h
    assert area.min() >= 0.35 - 1e-4 and area.max() <= 1 + 1e-6
    assert 0.6 < area.mean() < 0.7  # uniform in [0.35, 1] (mean 0.675), minus the few boxes shrunk to fit


def test_each_image_gets_its_own_view_and_gradients_reach_the_input():
    torch.manual_seed(1)
    x = torch.rand(1, 3, 32, 32).repeat(4, 1, 1, 1).requires_grad_()
    views = RandomViews(scale=(0.3, 0.6), blur=1.0)(x)
    assert views.shape == x.shape
    assert not torch.allclose(views[0], views[1])  # the same photo, two different views
    views.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_views_repeat_under_the_same_seed():
    x = torch.rand(4, 3, 32, 32)
    torch.manual_seed(3)
    a = random_views(x, blur=1.0)
    torch.manual_seed(3)
    assert torch.equal(a, random_views(x, blur=1.0))


@pytest.mark.parametrize("kwargs, match", [({"scale": (0.0, 1.0)}, "scale"), ({"scale": (0.8, 0.5)}, "scale"),
                                           ({"flip": 1.5}, "flip"), ({"ratio": (2.0, 1.0)}, "ratio")])
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_views(torch.rand(2, 3, 8, 8), **kwargs)


def test_a_single_image_is_refused_with_the_shape_named():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        random_views(torch.rand(3, 8, 8))
