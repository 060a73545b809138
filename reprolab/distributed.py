"""Several processes, one program: data parallelism under ``torchrun``.

:func:`reprolab.fit` uses this module when ``torch.distributed`` is initialised: every
rank draws the same global batch, keeps its slice of it, and the program's gradients
are averaged across ranks before each step, so every rank holds the same program and
the result matches one process on the same global batch. Galleries instead give each
rank its own classes (:func:`reprolab.gallery.build_gallery`).

    torchrun --nproc-per-node 2 -m reprolab uap --model efficientnet_lite0 --out uap.safetensors

On CPU the backend is gloo, on CUDA nccl (one GPU per rank, ``LOCAL_RANK``).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def init_from_env() -> bool:
    """Join the process group ``torchrun`` describes in the environment; False if not under torchrun."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 2 or dist.is_initialized():
        return dist.is_initialized()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


def shard(x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This rank's contiguous slice of a global batch; the batch must split evenly."""
    n, world = len(x), world_size()
    if n % world:
        raise ValueError(f"a global batch of {n} cannot be split evenly over {world} processes; "
                         f"use a batch size that is a multiple of {world}")
    lo, hi = rank() * n // world, (rank() + 1) * n // world
    return x[lo:hi], (y[lo:hi] if y is not None and len(y) == n else y)


def average_gradients(params: list[torch.Tensor]) -> None:
    """Replace each gradient by its mean over ranks (one flat all-reduce)."""
    grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    for g, part in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(part.view_as(g))


def broadcast_(params: list[torch.Tensor]) -> None:
    """Copy rank 0's values into every rank's ``params`` (same start everywhere)."""
    for p in params:
        dist.broadcast(p.data, src=0)


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average logged metrics over ranks so every rank's history is the global one."""
    if not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / world_size()).tolist()))


def barrier() -> None:
    if active():
        dist.barrier()
