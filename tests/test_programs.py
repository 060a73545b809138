import pytest
import torch

import reprolab
from reprolab.programs import AdditivePerturbation


@pytest.mark.parametrize("norm, param", [("inf", "tanh"), ("inf", "fourier"), ("inf", "projected"),
                                         ("2", "projected")])
def test_perturbation_bound_and_valid_range(norm, param):
    p = AdditivePerturbation(32, eps=8 / 255, norm=norm, parametrization=param)
    with torch.no_grad():
        p.w.normal_(0, 5)
    p.project_()
    d = p.delta()
    bound = d.abs().max() if norm == "inf" else d.norm()
    assert bound <= 8 / 255 + 1e-6
    out = p(torch.rand(4, 3, 32, 32))
    assert out.min() >= 0 and out.max() <= 1


def test_perturbation_resizes_for_other_input_sizes():
    p = AdditivePerturbation(32, eps=0.1)
    assert p(torch.rand(2, 3, 64, 64)).shape == (2, 3, 64, 64)


@pytest.mark.parametrize("kw, match", [
    (dict(eps=0), r"eps must be in \(0, 1\]"), (dict(eps=2.0), "10/255"),
    (dict(eps=0.1, norm="1"), "unknown norm"), (dict(eps=0.1, norm="2"), "projected"),
    (dict(eps=0.1, norm="2", parametrization="fourier"), "fourier parametrization bounds L-inf only"),
    (dict(eps=0.1, parametrization="pixels"), "use 'tanh', 'fourier' or 'projected'"),
])
def test_bad_program_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        AdditivePerturbation(32, **kw)


def test_save_load_round_trip(tmp_path):
    p = AdditivePerturbation(32, eps=0.1, norm="2", parametrization="projected")
    with torch.no_grad():
        p.w.uniform_(-0.01, 0.01)
    p.project_()  # within its bound: load_program refuses programs that break it
    reprolab.save_program(tmp_path / "p.safetensors", p, model="tiny", fooling_rate=0.5)
    q, meta = reprolab.load_program(tmp_path / "p.safetensors")
    assert isinstance(q, AdditivePerturbation) and q.norm == "2"
    assert torch.equal(q.delta(), p.delta())
    assert meta["model"] == "tiny" and meta["fooling_rate"] == 0.5
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_fourier_steps_are_smooth_and_the_program_round_trips(tmp_path):
    """One step on the 1/f spectrum moves pixels as much as a step on pixels, but smoothly."""
    torch.manual_seed(0)
    fourier, pixels = (AdditivePerturbation(64, eps=0.25, parametrization=p) for p in ("fourier", "tanh"))
    with torch.no_grad():  # what Adam's first step does: every coefficient moves by the same amount
        for p in (fourier, pixels):
            p.w.copy_(0.1 * torch.randn_like(p.w).sign())

    def roughness(d):  # mean squared difference of neighbouring pixels, relative to the variance
        return ((d[..., 1:, :] - d[..., :-1, :]).pow(2).mean() / d.var()).item()

    f, t = fourier.delta().detach(), pixels.delta().detach()
    assert 0.3 < f.std() / t.std() < 3           # comparable step sizes
    assert roughness(f) < 0.5 * roughness(t)     # the spectrum's step is smooth; pixel steps are noise (~2)
    assert f.abs().max() <= 0.25
    reprolab.save_program(tmp_path / "f.safetensors", fourier, model="tiny")
    q, _ = reprolab.load_program(tmp_path / "f.safetensors")
    assert q.parametrization == "fourier" and torch.allclose(q.delta(), fourier.delta())
    assert torch.allclose(q.select(0).delta(), fourier.delta())


def test_several_perturbations_pair_every_image_with_every_delta():
    p = AdditivePerturbation(8, eps=0.1, n=3, parametrization="projected")
    with torch.no_grad():
        p.w.copy_(torch.tensor([-0.1, 0.0, 0.1]).view(3, 1, 1, 1).expand(3, 3, 8, 8))
    x = torch.full((2, 3, 8, 8), 0.5)
    out = p(x)
    assert out.shape == (6, 3, 8, 8)
    # perturbation-major: rows 0-1 carry delta 0, rows 2-3 delta 1, rows 4-5 delta 2
    assert torch.allclose(out.mean((1, 2, 3)), torch.tensor([0.4, 0.4, 0.5, 0.5, 0.6, 0.6]))
    assert torch.equal(p.select(2)(x), out[4:])


def test_l2_projection_is_per_perturbation():
    p = AdditivePerturbation(8, eps=1.0, norm="2", parametrization="projected", n=2)
    with torch.no_grad():
        p.w[0].fill_(1.0)
        p.w[1].fill_(1e-3)
    p.project_()
    norms = p.delta().flatten(1).norm(dim=1)
    assert torch.allclose(norms[0], torch.tensor(1.0)) and norms[1] < 0.1  # only the long one shrank


def test_a_frame_saved_under_the_old_tensor_names_loads_under_the_new(tmp_path):
    """Files written before ``W`` became ``w`` and ``index`` became ``label_map`` (the zoo has some) still load."""
    frame = reprolab.ReprogrammingFrame(64, 16, n_task=3, m=2)
    with torch.no_grad():
        frame.w.normal_()
        frame.label_map.copy_(torch.tensor([[5, 6], [7, 8], [9, 10]]))
    old = {{"w": "W", "label_map": "index"}.get(k, k): v for k, v in frame.state_dict().items()}
    reprolab.save_artifact(tmp_path / "old.safetensors", old, {"program": "ReprogrammingFrame", "config": frame.config})
    loaded, _ = reprolab.load_program(tmp_path / "old.safetensors")
    assert torch.equal(loaded.w, frame.w) and torch.equal(loaded.label_map, frame.label_map)
