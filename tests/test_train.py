import pytest
import torch

import reprolab
from reprolab import AdditivePerturbation, TensorBatches, Targeted, fit


def _setup(tiny_model, seed=0):
    torch.manual_seed(seed)
    x, y = torch.rand(64, 3, 32, 32), torch.randint(0, 10, (64,))
    return AdditivePerturbation(32, eps=0.3), TensorBatches(x, y, batch_size=16, seed=1)


def test_learning_happens_and_weights_stay_frozen(tiny_model):
    program, batches = _setup(tiny_model)
    before = [p.clone() for p in tiny_model.parameters()]
    hist = fit(program, tiny_model, Targeted(3), batches, steps=40, lr=0.1, log_every=10, progress=False)
    assert hist.steps == [10, 20, 30, 40]
    assert hist.metrics["loss"][-1] < hist.metrics["loss"][0]
    assert hist.metrics["target_rate"][-1] > hist.metrics["target_rate"][0]
    assert all(torch.equal(a, b) for a, b in zip(before, tiny_model.parameters()))
    assert tiny_model.check_inputs  # restored after the loop


def test_deterministic_on_cpu(tiny_model):
    runs = []
    for _ in range(2):
        program, batches = _setup(tiny_model)
        fit(program, tiny_model, Targeted(3), batches, steps=12, progress=False)
        runs.append(program.w.detach().clone())
    assert torch.equal(*runs)


@pytest.mark.parametrize("micro_batch", [1, 5, 16])
def test_micro_batches_give_the_same_update(tiny_model, micro_batch):
    """Splitting each batch into passes (5 leaves a short last pass) changes nothing."""
    runs = []
    for mb in (None, micro_batch):
        _, batches = _setup(tiny_model)
        program = AdditivePerturbation(32, eps=0.3, n=3)  # a gallery-like program: 3 targets per image
        h = fit(program, tiny_model, Targeted([1, 3, 5]), batches, steps=6, lr=0.1, log_every=3,
                progress=False, micro_batch=mb)
        runs.append((program.w.detach().clone(), h))
    (w_full, h_full), (w_micro, h_micro) = runs
    assert torch.allclose(w_micro, w_full, atol=1e-5)
    assert h_micro.metrics["loss"] == pytest.approx(h_full.metrics["loss"], rel=1e-5)
    assert h_micro.metrics["target_rate"] == pytest.approx(h_full.metrics["target_rate"])


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_killed_and_resumed_equals_uninterrupted(tiny_model, tmp_path, schedule):
    full, batches = _setup(tiny_model)
    h_full = fit(full, tiny_model, Targeted(3), batches, steps=20, log_every=5, progress=False, schedule=schedule)

    ckpt = tmp_path / "run.safetensors"
    part, batches = _setup(tiny_model)

    class Killed(Exception):
        pass

    def kill_at_15(step, program):
        if step == 15:
            raise Killed
        return {}

    with pytest.raises(Killed):  # dies after the step-10 checkpoint, before step 15's
        fit(part, tiny_model, Targeted(3), batches, steps=20, log_every=5, checkpoint=ckpt,
            checkpoint_every=10, progress=False, callback=kill_at_15, schedule=schedule)
    resumed, batches = _setup(tiny_model)  # a fresh process: new program, same data
    h = fit(resumed, tiny_model, Targeted(3), batches, steps=20, log_every=5, checkpoint=ckpt,
            checkpoint_every=10, progress=False, schedule=schedule)
    assert torch.equal(resumed.w, full.w)
    assert h.steps == h_full.steps == [5, 10, 15, 20]
    assert h.metrics["loss"] == pytest.approx(h_full.metrics["loss"])


def test_unfrozen_model_and_bad_arguments_are_refused(tiny_model):
    program, batches = _setup(tiny_model)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))
    wrapped = reprolab.wrap_model(net, input_size=32)
    wrapped.requires_grad_(True)
    with pytest.raises(ValueError, match="require grad"):
        fit(program, wrapped, Targeted(0), batches, steps=1, progress=False)
    with pytest.raises(ValueError, match="out of range"):
        fit(program, tiny_model, Targeted(1000), batches, steps=1, progress=False)
    with pytest.raises(ValueError, match="micro_batch"):
        fit(program, tiny_model, Targeted(0), batches, steps=1, progress=False, micro_batch=0)
    with pytest.raises(ValueError, match="empty"):
        TensorBatches(torch.zeros(0, 3, 32, 32), torch.zeros(0), 4)


def test_batches_cover_each_epoch_once():
    b = TensorBatches(torch.arange(10.0), torch.arange(10), batch_size=5)
    seen = torch.cat([b(0)[1], b(1)[1]])
    assert sorted(seen.tolist()) == list(range(10))
    assert torch.equal(b(3)[1], TensorBatches(torch.arange(10.0), torch.arange(10), 5)(3)[1])


def test_callbacks_run_in_order_each_on_its_own_period(tiny_model):
    program, batches = _setup(tiny_model)
    calls = []

    def record(tag):
        return lambda step, prog: calls.append((tag, step)) or {tag: float(step)}

    hist = fit(program, tiny_model, Targeted(3), batches, steps=10, log_every=5, progress=False,
               callbacks=[reprolab.Callback(record("a"), every=4), reprolab.Callback(record("b"), every=5)],
               callback=record("first"), callback_every=10)
    assert calls == [("a", 4), ("b", 5), ("a", 8), ("first", 10), ("a", 10), ("b", 10)]
    assert hist.steps == [5, 10] and hist.metrics["a"] == [4.0, 10.0] and hist.metrics["b"] == [5.0, 10.0]
    with pytest.raises(ValueError, match="Callback.every must be"):
        fit(program, tiny_model, Targeted(3), batches, steps=2, progress=False,
            callbacks=[reprolab.Callback(record("a"), every=0)])
    assert tiny_model.check_inputs  # fit switched the input checks off only while it ran
