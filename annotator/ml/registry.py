"""Model files on disk: safetensors weights + a JSON card, published atomically, loaded only if intact.

Publishing writes both files into a temporary folder inside the registry folder, fsyncs them, then
renames the folder to its final name with ``os.replace`` (atomic on one file system) and fsyncs the
registry folder: a reader sees a whole model or none. Each publish first removes the temporary folders
of publishes that died (untouched for ``STALE_TEMP_S``). Loading hashes the file first and refuses a
mismatch; weights are read with ``safetensors`` (plain tensors, never unpickled; no ``torch.load``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from annotator.domain.errors import ModelIntegrityError

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"
TEMP_PREFIX = ".tmp-"
STALE_TEMP_S = 15 * 60  # a temporary folder untouched this long belongs to a publish that died


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


class Staged:
    """A model written into a temporary folder, not yet visible; ``publish`` or ``discard`` it."""

    def __init__(self, registry: Path, name: str, tensors: dict[str, torch.Tensor], card: dict[str, Any]) -> None:
        registry.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(registry)  # what an earlier publish that crashed left behind
        self.registry = registry
        self.final = registry / name
        if self.final.exists():
            raise FileExistsError(f"model folder {self.final} already exists")
        self.temp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=registry))
        try:
            os.chmod(self.temp, 0o755)  # mkdtemp makes it private; models are shared with the project's users
            weights = self.temp / WEIGHTS_FILE
            save_file(tensors, str(weights), metadata={"format": "pt"})  # no name: same seed -> same bytes
            os.chmod(weights, 0o644)
            with open(weights, "rb+") as fh:
                os.fsync(fh.fileno())
            self.sha256 = sha256_file(weights)
            self.card = {**card, "name": name, "weights_file": WEIGHTS_FILE, "weights_sha256": self.sha256}
            _write_json(self.temp / CARD_FILE, self.card)
            _fsync_dir(self.temp)
        except BaseException:
            self.discard()
            raise

    @property
    def weights_path(self) -> Path:
        return self.final / WEIGHTS_FILE

    def publish(self) -> Path:
        os.replace(self.temp, self.final)
        _fsync_dir(self.registry)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.temp, ignore_errors=True)


def remove_published(folder: Path) -> None:
    """Undo a publish whose database registration failed (rename away first, then delete)."""
    if folder.exists():
        trash = folder.with_name(f"{TEMP_PREFIX}trash-{folder.name}")
        os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)


def _last_touched(folder: Path) -> float:
    """The newest modification time of a folder and the files in it (a weights file being written
    keeps its folder young)."""
    times = [folder.stat().st_mtime]
    for p in folder.iterdir():
        with contextlib.suppress(OSError):  # removed meanwhile
            times.append(p.stat().st_mtime)
    return max(times)


def clean_stale_temps(registry: Path, older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Remove temporary folders left by a process that died mid-publish (or mid-removal); the removed.

    Only folders untouched for ``older_than_s`` go, so a publish running in another process is left alone.
    """
    removed = []
    now = time.time()
    if registry.is_dir():
        for p in registry.iterdir():
            try:
                stale = p.name.startswith(TEMP_PREFIX) and p.is_dir() and now - _last_touched(p) > older_than_s
            except OSError:  # another process removed or published it meanwhile
                continue
            if stale:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


def load_weights(path: str | os.PathLike[str], expected_sha256: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file whose SHA-256 matches; ModelIntegrityError otherwise."""
    p = Path(path)
    if not p.is_file():
        raise ModelIntegrityError(f"model weights {p} are missing")
    actual = sha256_file(p)
    if actual != expected_sha256:
        raise ModelIntegrityError(f"model weights {p} were changed or damaged: SHA-256 is {actual}, "
                                  f"the model card expects {expected_sha256}")
    try:
        return load_file(str(p))
    except Exception as exc:  # a file with the right hash that safetensors cannot parse
        raise ModelIntegrityError(f"model weights {p} cannot be read: {exc}") from None


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the weights (recorded in every model card)."""
    import numpy
    import safetensors
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "safetensors": safetensors.__version__, "numpy": numpy.__version__}


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """A hash of the weights' values (independent of file layout): for reproducibility checks."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def tensors_to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """The tensors as safetensors bytes: how a child process hands its weights back (never pickled)."""
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def tensors_from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    return load(data)


def cuda_device_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0
