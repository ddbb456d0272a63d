"""Which torch device trains and reads: ``auto`` (a CUDA GPU if torch sees one, else the CPU), ``cpu``,
``cuda`` or ``cuda:N``.

Only the networks and their batches live on the device. Shuffling and augmentation draw from one CPU
``torch.Generator`` and run on the CPU, so the data order and the augmented batches are the same on
every device. Bit-identical weights for the same seed hold on the CPU only (same thread count): GPU
kernels (cuDNN, cuBLAS, atomics in the detector's backward pass) do not promise the same sums.
"""

from __future__ import annotations

import re

import torch

from annotator.domain.errors import InputError

CPU = torch.device("cpu")
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_SPEC = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(spec: str | None = "auto") -> torch.device:
    """The torch device for ``spec``; InputError (one line) for a typo or a CUDA device torch cannot use."""
    text = (spec or "auto").strip().lower()
    if not _SPEC.match(text):
        raise InputError(f"--device {spec}: use {DEVICE_CHOICES}")
    if text == "cpu" or (text == "auto" and not torch.cuda.is_available()):
        return CPU
    if not torch.cuda.is_available():
        why = ("built without CUDA" if torch.version.cuda is None
               else f"with CUDA {torch.version.cuda}, but no GPU is visible")
        raise InputError(f"--device {spec}: no CUDA device available (torch {torch.__version__} {why})")
    count = torch.cuda.device_count()
    index = int(text.split(":")[1]) if ":" in text else torch.cuda.current_device()
    if index >= count:
        raise InputError(f"--device {spec}: torch sees {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return torch.device("cuda", index)


def describe_device(device: torch.device) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H100 80GB HBM3)``: what the model card records."""
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch made on the CPU, on ``device`` (no copy, the same tensor, when that is the CPU)."""
    return t.to(device, non_blocking=True)
