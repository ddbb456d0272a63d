"""One interface for both presets: train a localizer + classifier pipeline, read slices with it.

The service layer hands in prepared examples (numpy) and gets back plain results; nothing here knows
about the database. Training is seeded and deterministic on the CPU (fixed thread count, deterministic
algorithms, one generator for shuffling and augmentation), reports once per epoch through a callback
and checks ``should_stop`` between batches, raising ``Cancelled``. The networks run on the pipeline's
``device`` (see ``annotator.ml.device``); batches are made on the CPU and moved there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from annotator.domain.errors import Cancelled, ModelIntegrityError
from annotator.domain.progress import ShouldStop, never_stop
from annotator.ml import preprocess
from annotator.ml.config import Preset
from annotator.ml.device import CPU, to_device
from annotator.ml.preprocess import Example, SliceInput
from annotator.ml.runtime import Runtime


@dataclass(frozen=True, slots=True)
class EpochReport:
    fold: int | None
    epoch: int  # 1-based
    epochs: int
    loss: float  # classifier loss (the localizer's is separate)
    localizer_loss: float
    train_accuracy: float  # on the augmented training crops of this epoch
    val_accuracy: float | None  # on the held-out fold's labelled slices (cross-validation only)
    seconds: float


@dataclass(frozen=True, slots=True)
class SlicePrediction:
    key: int
    x_px: float
    y_px: float
    grade_index: int
    probabilities: tuple[float, ...]


OnEpoch = Callable[[EpochReport], None]


class Localizer(Protocol):
    device: torch.device
    train_net: nn.Module  # ``net`` as trained (wrapped in data-parallel training)

    @property
    def net(self) -> nn.Module: ...

    def setup(self, n_train: int, epochs: int, run: Runtime) -> None: ...
    def train_epoch(self, examples: Sequence[Example], gen: torch.Generator, check: Callable[[], None]
                    ) -> float: ...
    def locate(self, overviews: torch.Tensor) -> torch.Tensor: ...
    def modules(self) -> dict[str, nn.Module]: ...


class Classifier(Protocol):
    device: torch.device
    train_net: nn.Module

    @property
    def net(self) -> nn.Module: ...

    def setup(self, train: Sequence[Example], epochs: int, run: Runtime) -> None: ...
    def train_epoch(self, examples: Sequence[Example], gen: torch.Generator, check: Callable[[], None]
                    ) -> tuple[float, float]: ...
    def classify(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...
    def accuracy(self, examples: Sequence[Example]) -> float: ...
    def modules(self) -> dict[str, nn.Module]: ...


@contextmanager
def intra_op_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count for the duration (restored after).

    The count is part of the recipe: it changes the order of floating-point sums, so the same seed gives
    the same weights only with the same count. Small convolutions on a CPU shared with other processes
    run far better on one thread than on two fighting for a core (see models/README.md).
    """
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def deterministic(seed: int, threads: int, device: torch.device = CPU) -> Iterator[None]:
    """Fixed threads, seeded global RNG (CPU and CUDA) and, on the CPU, deterministic kernels for the
    duration (all restored after).

    On a GPU the run is seeded but not bit-reproducible: deterministic mode is left as it was there,
    since some CUDA kernels the networks need have no deterministic version (adaptive average pooling
    and RoIAlign backward), cuBLAS would also need ``CUBLAS_WORKSPACE_CONFIG`` set before it starts, and
    the mode's filling of fresh memory costs time. cuDNN's auto-tuner stays off (it picks kernels by
    timing, which varies from run to run).
    """
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_bench = torch.backends.cudnn.benchmark
    with intra_op_threads(threads):
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.manual_seed(seed)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
            torch.backends.cudnn.benchmark = old_bench


class Pipeline:
    """Localizer + classifier, built from a preset for ``n_classes`` grades, on ``device`` (default CPU)."""

    def __init__(self, preset: Preset, n_classes: int, device: torch.device | str = CPU) -> None:
        self.preset = preset
        self.n_classes = n_classes
        self.device = torch.device(device)
        if preset.localizer.arch == "unet":
            from annotator.ml.fast import HeatmapLocalizer

            self.localizer: Localizer = HeatmapLocalizer(preset, self.device)
        else:
            from annotator.ml.paper import RCNNLocalizer

            self.localizer = RCNNLocalizer(preset, self.device)
        if preset.classifier.arch == "compact":
            from annotator.ml.fast import CompactClassifier

            self.classifier: Classifier = CompactClassifier(preset, n_classes, self.device)
        else:
            from annotator.ml.paper import VGGClassifier

            self.classifier = VGGClassifier(preset, n_classes, self.device)

    def to(self, device: torch.device | str) -> Pipeline:
        """Move both networks (for reading; ``fit`` rebuilds them on the pipeline's device)."""
        self.device = torch.device(device)
        for module in self.modules().values():
            module.to(self.device)
        self.localizer.device = self.classifier.device = self.device
        return self

    # --- training -----------------------------------------------------------------------------------

    def fit(self, train: Sequence[Example], *, seed: int, val: Sequence[Example] = (), fold: int | None = None,
            on_epoch: OnEpoch | None = None, should_stop: ShouldStop = never_stop,
            runtime: Runtime | None = None) -> None:
        """Train both networks: one pass of each per epoch, ``preset.train.epochs`` epochs.

        The localizer trains in the first ``localizer.epochs_fraction`` of the epochs only. ``runtime``:
        mixed precision and this process's shard in data-parallel training (default: one process, float32;
        see :mod:`annotator.ml.runtime`). Its device must be the pipeline's.
        """
        run = runtime or Runtime(self.device)
        if run.device != self.device:
            raise ValueError(f"runtime on {run.device}, pipeline on {self.device}")
        if len(train) < 2:
            raise ValueError("training needs at least two labelled slices")
        epochs = self.preset.train.epochs

        def check() -> None:
            if should_stop():
                raise Cancelled("training cancelled; nothing was saved")

        with deterministic(seed, self.preset.train.threads, self.device):
            # built on the CPU from the seeded global RNG, then moved: the same start on every device
            self.localizer = self._rebuild_localizer()
            self.classifier = self._rebuild_classifier()
            # a CPU generator: the same data order on every device (seeded by rank in data-parallel training)
            gen = torch.Generator().manual_seed(run.generator_seed(seed))
            loc_epochs = self.preset.localizer.epochs(epochs)
            self.localizer.setup(len(train), loc_epochs, run)
            self.classifier.setup(train, epochs, run)
            loc_loss = float("nan")
            for epoch in range(1, epochs + 1):
                t0 = time.perf_counter()
                if epoch <= loc_epochs:  # the localizer's task is easier: it may stop early (preset)
                    loc_loss = self.localizer.train_epoch(train, gen, check)
                loss, acc = self.classifier.train_epoch(train, gen, check)
                val_acc = self.classifier.accuracy(val) if val else None
                if on_epoch is not None:
                    on_epoch(EpochReport(fold, epoch, epochs, loss, loc_loss, acc, val_acc,
                                         time.perf_counter() - t0))
            for part in (self.localizer, self.classifier):  # drop the wrappers; plain networks from here on
                part.train_net = part.net
            run.release(self.modules().values())

    def _rebuild_localizer(self) -> Localizer:
        return type(self.localizer)(self.preset, self.device)  # type: ignore[call-arg]

    def _rebuild_classifier(self) -> Classifier:
        return type(self.classifier)(self.preset, self.n_classes, self.device)  # type: ignore[call-arg]

    # --- weights ------------------------------------------------------------------------------------

    def modules(self) -> dict[str, nn.Module]:
        return {**self.localizer.modules(), **self.classifier.modules()}

    def state_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Every parameter and buffer as a flat ``{prefix}{module}.{name}`` -> CPU tensor map (safetensors)."""
        out: dict[str, torch.Tensor] = {}
        for name, module in self.modules().items():
            for key, value in module.state_dict().items():
                out[f"{prefix}{name}.{key}"] = value.detach().to(CPU).contiguous().clone()
        return out

    def load_tensors(self, tensors: dict[str, torch.Tensor], prefix: str = "") -> None:
        """Load (CPU) tensors from ``state_tensors`` into the networks, wherever they are."""
        for name, module in self.modules().items():
            head = f"{prefix}{name}."
            state = {k[len(head):]: v for k, v in tensors.items() if k.startswith(head)}
            try:
                module.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise ModelIntegrityError(f"weights do not fit the {name} of this preset: "
                                          f"{str(exc).splitlines()[0]}") from None
            module.eval()

    # --- inference ----------------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, slices: Iterable[SliceInput], batch_size: int = 16,
                should_stop: ShouldStop = never_stop) -> Iterator[SlicePrediction]:
        """Locate the canal, re-centre the crop ``refine_steps`` times, grade the last crop."""
        chunk: list[SliceInput] = []
        for s in slices:
            chunk.append(s)
            if len(chunk) >= batch_size:
                if should_stop():
                    raise Cancelled("prediction cancelled")
                yield from self._predict_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._predict_chunk(chunk)

    def _predict_chunk(self, chunk: Sequence[SliceInput]) -> list[SlicePrediction]:
        with intra_op_threads(self.preset.train.threads):
            return self._predict_chunk_now(chunk)

    def _predict_chunk_now(self, chunk: Sequence[SliceInput]) -> list[SlicePrediction]:
        p = self.preset
        loc, cls_ = p.localizer, p.classifier
        images = [preprocess.normalise(s.pixels, p.intensity.low_pct, p.intensity.high_pct) for s in chunk]
        dev = self.device
        overviews = to_device(torch.from_numpy(np.stack([
            preprocess.overview(im, s.spacing, p) for im, s in zip(images, chunk, strict=True)]))[:, None], dev)
        grid_pts = self.localizer.locate(overviews).cpu().numpy().astype(np.float64)
        points = np.array([preprocess.from_overview(tuple(g), im.shape, s.spacing, loc.grid_px, loc.mm_per_px)
                           for g, im, s in zip(grid_pts, images, chunk, strict=True)])
        sp = np.array([s.spacing for s in chunk], dtype=np.float64)
        shapes = np.array([im.shape for im in images], dtype=np.float64)
        probs = torch.zeros(len(chunk), self.n_classes, device=dev)
        for _ in range(cls_.refine_steps + 1):
            points[:, 0] = np.clip(points[:, 0], 0, shapes[:, 1] - 1)
            points[:, 1] = np.clip(points[:, 1], 0, shapes[:, 0] - 1)
            crops = to_device(torch.from_numpy(np.stack([
                preprocess.resample(im, s.spacing, (float(pt[0]), float(pt[1])), cls_.crop_px, cls_.crop_mm_per_px)
                for im, s, pt in zip(images, chunk, points, strict=True)]))[:, None], dev)
            probs, offset = self.classifier.classify(crops)
            if cls_.tta_flip:  # the mirror sees the same canal: average grades, un-mirror its offset
                probs_m, offset_m = self.classifier.classify(torch.flip(crops, dims=[3]))
                probs = (probs + probs_m) / 2
                if offset is not None and offset_m is not None:
                    offset = (offset + offset_m * torch.tensor([-1.0, 1.0], device=dev)) / 2
            if offset is None:
                break
            off = offset.cpu().numpy().astype(np.float64)
            points = points + np.stack([off[:, 0] / sp[:, 1], off[:, 1] / sp[:, 0]], 1)
        return [SlicePrediction(s.key, float(pt[0]), float(pt[1]), int(pr.argmax()),
                                tuple(round(float(v), 6) for v in pr))
                for s, pt, pr in zip(chunk, points, probs.cpu(), strict=True)]
