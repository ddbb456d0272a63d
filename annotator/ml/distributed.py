"""Data-parallel training across the processes of one ``torchrun`` launch (one node or several).

``torchrun`` starts one process per GPU (or per CPU share) and tells each its place through the
environment: ``RANK`` (0..WORLD_SIZE-1 over all nodes), ``WORLD_SIZE`` and ``LOCAL_RANK`` (its index on
its node), plus the rendezvous address that ``init_process_group`` reads. :func:`process_group` joins
the group with NCCL when the process has a GPU (``cuda:LOCAL_RANK``) and gloo on the CPU, and leaves it
on the way out. The :class:`Group` hands out the :class:`~annotator.ml.runtime.Runtime` that shards the
data and wraps the networks, a barrier, and a check that every rank holds the same value (the training
set's snapshot hash: ranks that read different labels must not train one model).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from annotator.domain.errors import InputError
from annotator.ml.device import CPU, resolve_device
from annotator.ml.runtime import Precision, Runtime

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
SHARD_LOG_VAR = "ANNOTATOR_SHARD_LOG"  # debug: a folder where each rank logs the examples it trained on


@dataclass(frozen=True, slots=True)
class Launch:
    """This process's place in a torchrun launch."""

    rank: int
    world_size: int
    local_rank: int
    shard_log: Path | None = None  # the rank's shard log file, when SHARD_LOG_VAR names a folder

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Launch:
        missing = [k for k in LAUNCH_VARS if not env.get(k)]
        if missing:
            raise InputError(f"--distributed: start the command with torchrun (or srun torchrun); "
                             f"{', '.join(missing)} not set")
        try:
            rank, world, local = (int(env[k]) for k in LAUNCH_VARS)
        except ValueError:
            raise InputError(f"--distributed: {', '.join(f'{k}={env[k]!r}' for k in LAUNCH_VARS)} "
                             "are not integers") from None
        if not (0 <= rank < world and local >= 0):
            raise InputError(f"--distributed: RANK {rank} does not fit WORLD_SIZE {world}")
        folder = env.get(SHARD_LOG_VAR)
        return cls(rank, world, local, Path(folder) / f"rank{rank}.jsonl" if folder else None)


def device_for(launch: Launch, spec: str) -> torch.device:
    """``cuda:LOCAL_RANK`` for ``auto`` (with a GPU) or ``cuda``; the CPU for ``cpu`` or ``auto`` without one."""
    text = (spec or "auto").strip().lower()
    if text.startswith("cuda:"):
        raise InputError(f"--device {spec} with --distributed: each process takes the GPU of its LOCAL_RANK; "
                         "use --device cuda (or auto) and CUDA_VISIBLE_DEVICES to choose the GPUs")
    device = resolve_device(text)  # InputError for a typo or CUDA without a GPU
    if device.type != "cuda":
        return CPU
    count = torch.cuda.device_count()
    if launch.local_rank >= count:
        raise InputError(f"--distributed: LOCAL_RANK {launch.local_rank}, but torch sees {count} GPU(s) on this "
                         f"node; start at most {count} processes per node (--nproc_per_node)")
    return torch.device("cuda", launch.local_rank)


@dataclass(frozen=True, slots=True)
class Group:
    launch: Launch
    device: torch.device
    backend: str  # nccl or gloo

    @property
    def rank(self) -> int:
        return self.launch.rank

    @property
    def world_size(self) -> int:
        return self.launch.world_size

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that reports progress and publishes."""
        return self.launch.rank == 0

    def runtime(self, seed: int, precision: Precision) -> Runtime:
        return Runtime(self.device, precision, self.rank, self.world_size, seed, self.launch.shard_log)

    def barrier(self) -> None:
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.device.index or 0])
        else:
            dist.barrier()

    def require_same(self, value: str, what: str) -> None:
        """InputError on every rank unless every rank holds the same ``value``."""
        values: list[object] = [None] * self.world_size
        dist.all_gather_object(values, value)
        if len(set(values)) > 1:
            raise InputError(f"--distributed: the ranks read different {what} ({len(set(values))} versions); "
                             "was it changed while they started? Nothing was trained")


@contextmanager
def process_group(device: str, env: Mapping[str, str] | None = None) -> Iterator[Group]:
    """Join the launch's process group (NCCL on GPUs, gloo on CPUs) for the duration."""
    launch = Launch.from_environ(os.environ if env is None else env)
    dev = device_for(launch, device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend, rank=launch.rank, world_size=launch.world_size,
                            device_id=dev if dev.type == "cuda" else None)
    try:
        yield Group(launch, dev, backend)
    finally:
        dist.destroy_process_group()
