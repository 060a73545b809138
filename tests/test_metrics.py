import torch

import reprolab
from reprolab.metrics import evaluate_perturbation, transfer_matrix


class Shift(torch.nn.Module):
    """A 'program' that replaces images by a constant, so predictions are known."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full_like(x, self.value)


def test_fooling_rate_and_error_rate_differ(tiny_model):
    # brightness 0.5 -> class 4 or 5 by rounding; the constant program makes everything class 0
    x = torch.cat([torch.full((10, 3, 32, 32), 1.0), torch.full((10, 3, 32, 32), 0.0)])
    y = torch.cat([torch.full((10,), 9), torch.full((10,), 0)])
    out = evaluate_perturbation(tiny_model, Shift(0.0), x, y)
    # the 10 bright images flip 9 -> 0 (fooled and wrong); the 10 dark ones stay 0 (right)
    assert out == {"fooling_rate": 0.5, "error_rate": 0.5, "clean_accuracy": 1.0, "n": 20}
    y[10:] = 5  # now the dark images were wrong to begin with: error rate rises, fooling rate does not
    out = evaluate_perturbation(tiny_model, Shift(0.0), x, y)
    assert out["fooling_rate"] == 0.5 and out["error_rate"] == 1.0 and out["clean_accuracy"] == 0.5


def test_unlabelled_images_give_fooling_rate_only(tiny_model):
    out = evaluate_perturbation(tiny_model, Shift(1.0), torch.rand(4, 3, 32, 32), torch.full((4,), -1))
    assert set(out) == {"fooling_rate", "n"}


def test_transfer_diagonal_equals_single_evaluation(tiny_model):
    import copy

    other = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    models = {"a": tiny_model, "b": other}
    programs = {"a": Shift(0.2), "b": reprolab.AdditivePerturbation(32, eps=0.5)}
    with torch.no_grad():
        programs["b"].w.normal_()
    x, y = torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,))
    rows, cols, m = transfer_matrix(programs, models, lambda model: (x, y))
    assert rows == cols == ["a", "b"] and m.shape == (2, 2)
    for i, name in enumerate(rows):
        assert m[i, i] == evaluate_perturbation(models[name], programs[name], x, y)["fooling_rate"]


def test_dominant_labels_count_only_fooled_images(tiny_model):
    from reprolab.metrics import dominant_labels

    # 10 bright images (class 9) are pushed to class 0; 10 dark ones were class 0 already
    x = torch.cat([torch.full((10, 3, 32, 32), 1.0), torch.full((10, 3, 32, 32), 0.0)])
    shares = dominant_labels(tiny_model, Shift(0.0), x)
    assert shares == [(tiny_model.class_names[0], 0.5)]  # not 1.0: the dark ones were not moved


def test_a_reprogramming_frame_is_measured_on_the_split_asked_for(tiny_model):
    """heldout (the default) reads only held-out digits, craft only training ones, all both."""
    from reprolab.metrics import evaluate_program
    from reprolab.programs import ReprogrammingFrame

    frame = ReprogrammingFrame(32, 16, 10)
    n_train, n_held = (len(reprolab.data.load_task("digits", s)[1]) for s in ("train", "heldout"))
    meta = {"task": "digits"}
    held = evaluate_program(tiny_model, frame, meta)
    assert set(held) == {"task", "split", "heldout_accuracy", "n"} and held["n"] == n_held
    train = evaluate_program(tiny_model, frame, meta, split="craft")
    assert set(train) == {"task", "split", "train_accuracy", "train_n", "n"} and train["n"] == n_train == train["train_n"]
    both = evaluate_program(tiny_model, frame, meta, split="all")
    assert (both["train_accuracy"], both["heldout_accuracy"], both["n"]) == (
        train["train_accuracy"], held["heldout_accuracy"], n_held)
