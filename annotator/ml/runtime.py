"""How one training process runs: its precision and, in data-parallel training, its shard of the data.

``Runtime()`` is the single-process default and changes nothing: the data order is the
``torch.randperm`` of the pipeline's one CPU generator, batches are the preset's, the networks train as
built, in float32. With ``precision="bf16"`` the forward passes and losses run under ``torch.autocast``
with bfloat16 (``resolve_precision`` chooses it only on a CUDA device that supports it; the CPU path
stays float32). Inference stays float32.

With ``world > 1`` (one process of a ``torchrun`` launch, see :mod:`annotator.ml.distributed`) the
preset's batch size is the *global* batch: each rank takes ``ceil(batch / world)`` samples from its own
shard, drawn by ``torch.utils.data.DistributedSampler`` with the run's seed (the same permutation on
every rank, so the shards are disjoint and together cover the data; when the count does not divide by
the world size the sampler repeats up to ``world - 1`` samples to even them out). The networks are
wrapped in ``DistributedDataParallel`` (gradients averaged over ranks) and, on GPUs, their batch norm
becomes ``SyncBatchNorm`` (statistics over the global batch; torch has it on CUDA only, so on CPUs each
rank normalises its own part of the batch). So N ranks take the same optimiser steps on the same global
batches as one process would, with different augmentation draws (each rank's generator is seeded
``seed * world + rank``). Epoch figures are summed over ranks before they are reported.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from annotator.domain.errors import InputError
from annotator.ml.device import CPU

Precision = Literal["bf16", "none"]
PRECISION_CHOICES = ("auto", "bf16", "fp32")


def resolve_precision(request: str | None, device: torch.device) -> Precision:
    """``bf16`` or ``none`` for ``--precision auto|bf16|fp32`` on ``device``.

    ``auto`` (the default) is bf16 autocast on a CUDA device that supports bfloat16 and float32
    everywhere else; ``bf16`` on a device without it is an InputError (one line) rather than a silent
    float32 run; ``fp32`` is always float32.
    """
    text = (request or "auto").strip().lower()
    if text not in PRECISION_CHOICES:
        raise InputError(f"--precision {request}: use {', '.join(PRECISION_CHOICES)}")
    if text == "fp32":
        return "none"
    supported = device.type == "cuda" and bool(torch.cuda.is_bf16_supported())
    if text == "bf16" and not supported:
        where = "the CPU" if device.type != "cuda" else f"{device} (no bfloat16 support)"
        raise InputError(f"--precision bf16: mixed precision runs on a CUDA GPU with bfloat16 only, not on {where}")
    return "bf16" if supported else "none"


@dataclass
class Runtime:
    """One training process's precision and place in a data-parallel group (rank of world)."""

    device: torch.device = CPU
    precision: Precision = "none"
    rank: int = 0
    world: int = 1
    seed: int = 0  # the sampler's seed (the same on every rank)
    shard_log: Path | None = None  # debug: append the example keys of each draw of this rank here
    _draws: int = field(default=0, repr=False)

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def generator_seed(self, seed: int) -> int:
        """The seed of this rank's augmentation generator: ``seed`` itself in a single process."""
        return seed * self.world + self.rank

    # --- data ---------------------------------------------------------------------------------------

    def order(self, keys: Sequence[int], gen: torch.Generator, weights: torch.Tensor | None = None) -> torch.Tensor:
        """This rank's sample indices for one pass over ``len(keys)`` examples, in training order.

        One process: ``randperm`` (or, with ``weights``, a weighted draw with replacement) from ``gen``.
        Several: the ``DistributedSampler`` shard of a permutation shared by all ranks (a weighted draw
        from a generator seeded alike on every rank, split the same way).
        """
        n = len(keys)
        if not self.parallel:
            idx = (torch.multinomial(weights, n, replacement=True, generator=gen) if weights is not None
                   else torch.randperm(n, generator=gen))
        elif weights is None:
            from torch.utils.data import DistributedSampler

            sampler: DistributedSampler[int] = DistributedSampler(
                range(n), num_replicas=self.world, rank=self.rank, shuffle=True,  # type: ignore[arg-type]
                seed=self.seed, drop_last=False)
            sampler.set_epoch(self._draws)
            idx = torch.tensor(list(sampler), dtype=torch.int64)
        else:
            shared = torch.Generator().manual_seed(self.seed * 1_000_003 + self._draws)
            drawn = torch.multinomial(weights, n, replacement=True, generator=shared)
            total = math.ceil(n / self.world) * self.world
            drawn = torch.cat([drawn, drawn[:total - n]])
            idx = drawn[self.rank:total:self.world]
        self._log(keys, idx)
        self._draws += 1
        return idx

    def batch_size(self, size: int) -> int:
        """Samples per step on this rank: the preset's ``size`` split over the ranks (BatchNorm needs 2)."""
        return size if not self.parallel else max(2, math.ceil(size / self.world))

    def shard_size(self, n: int) -> int:
        return n if not self.parallel else math.ceil(n / self.world)

    def _log(self, keys: Sequence[int], idx: torch.Tensor) -> None:
        if self.shard_log is None:
            return
        self.shard_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.shard_log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"rank": self.rank, "world": self.world, "draw": self._draws,
                                 "keys": [int(keys[i]) for i in idx.tolist()]}) + "\n")

    # --- networks -----------------------------------------------------------------------------------

    @property
    def sync_batch_norm(self) -> bool:
        """Whether batch norm is synchronised over the ranks (data-parallel on GPUs)."""
        return self.parallel and self.device.type == "cuda"

    def prepare(self, net: nn.Module, *, find_unused: bool = False) -> nn.Module:
        """The module to train with: ``net`` itself in one process; else ``net`` wrapped in
        DistributedDataParallel, its batch norm made SyncBatchNorm first on GPUs (in place: the parameters
        stay the same objects)."""
        if not self.parallel:
            return net
        from torch.nn.parallel import DistributedDataParallel

        if self.sync_batch_norm:
            nn.SyncBatchNorm.convert_sync_batchnorm(net)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids, find_unused_parameters=find_unused)

    def release(self, nets: Iterable[nn.Module]) -> None:
        """After training: SyncBatchNorm back to BatchNorm2d (same tensors), so the published networks and
        inference are those of a single-process run."""
        if self.sync_batch_norm:
            for net in nets:
                revert_sync_batchnorm(net)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context of a training forward pass and its loss: bf16 autocast, or nothing."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sums(self, *values: float) -> list[float]:
        """``values`` summed over the ranks (themselves in one process)."""
        if not self.parallel:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t.cpu()]


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every SyncBatchNorm below ``module`` by a BatchNorm2d sharing its parameters and buffers."""
    for name, child in module.named_children():
        if isinstance(child, nn.SyncBatchNorm):
            bn = nn.BatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                child.track_running_stats, device=child.weight.device if child.affine else None)
            if child.affine:
                bn.weight, bn.bias = child.weight, child.bias
            bn.running_mean, bn.running_var = child.running_mean, child.running_var
            bn.num_batches_tracked = child.num_batches_tracked
            bn.train(child.training)
            module.add_module(name, bn)
        else:
            revert_sync_batchnorm(child)
    return module

