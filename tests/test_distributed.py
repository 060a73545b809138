"""Data-parallel fit and sharded galleries under torch.distributed (gloo, 2 CPU processes)."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from helpers import make_tiny_model

EPS, STEPS, BATCH = 16 / 255, 12, 8


def small_net():
    """A random conv net: unlike the tiny brightness model, each image pulls the
    perturbation its own way, so a wrong split of the batch would show."""
    import reprolab
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    return reprolab.wrap_model(net, input_size=32, name="small")


def crafting_images() -> torch.Tensor:
    return torch.rand(24, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def craft(steps: int = STEPS, batch_size: int = BATCH):
    from reprolab import uap

    # augment: the random views are drawn for the global batch, so they match too
    program, history = uap.sgd_uap(small_net(), crafting_images(), EPS, steps=steps, batch_size=batch_size,
                                   lr=EPS / 4, progress=False, log_every=4)
    return program.w.detach().clone(), history


def _join(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)


def _craft_worker(rank: int, world: int, port: int, out: str) -> None:
    _join(rank, world, port)
    try:
        w, history = craft()
        save_file({"w": w, "loss": torch.tensor(history.metrics["loss"])}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _gallery_worker(rank: int, world: int, port: int, out: str) -> None:
    from reprolab import gallery

    _join(rank, world, port)
    try:
        gallery.build_gallery(make_tiny_model(), crafting_images(), [1, 3, 5, 7], out, eps=EPS, steps=4,
                              batch_size=4, classes_per_run=1, progress=False, augment=False)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(worker, *args) -> None:
    mp.spawn(worker, args=(2, free_port(), *args), nprocs=2, join=True)


@pytest.mark.slow
def test_two_processes_match_one_on_the_same_global_batch(tmp_path):
    w1, history = craft()
    spawn(_craft_worker, str(tmp_path / "w"))
    ranks = [load_file(tmp_path / f"w.{r}") for r in range(2)]
    assert torch.equal(ranks[0]["w"], ranks[1]["w"]), "the ranks' programs diverged"
    assert torch.allclose(ranks[0]["w"], w1, atol=1e-6), (ranks[0]["w"] - w1).abs().max()
    assert w1.abs().max() > EPS / 2, "nothing was learned: the comparison would be empty"
    assert torch.allclose(ranks[0]["loss"], torch.tensor(history.metrics["loss"]), atol=1e-5)


def test_a_global_batch_that_does_not_split_evenly_is_refused(monkeypatch):
    from reprolab import distributed

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    x, y = distributed.shard(torch.arange(6), torch.arange(6))
    assert x.tolist() == [3, 4, 5] and y.tolist() == [3, 4, 5]
    with pytest.raises(ValueError, match="multiple of 2"):
        distributed.shard(torch.arange(5), None)


@pytest.mark.slow
def test_a_gallery_sharded_over_two_processes_equals_one_process(tmp_path):
    from reprolab import gallery, load_program

    one, two = tmp_path / "one", tmp_path / "two"
    gallery.build_gallery(make_tiny_model(), crafting_images(), [1, 3, 5, 7], one, eps=EPS, steps=4, batch_size=4,
                          classes_per_run=1, progress=False, augment=False)
    spawn(_gallery_worker, str(two))
    index_one, index_two = gallery.read_index(one), gallery.read_index(two)
    assert sorted(index_two["classes"]) == ["1", "3", "5", "7"]
    assert (two / gallery.INDEX).exists() and not list(two.glob("*.tmp"))
    for c in index_one["classes"]:
        a = load_program(one / index_one["classes"][c]["program"])[0].delta()
        b = load_program(two / index_two["classes"][c]["program"])[0].delta()
        assert torch.allclose(a, b, atol=1e-6), c
