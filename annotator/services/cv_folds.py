"""One cross-validation fold as a unit of work, run in this process or in a pool of child processes.

``annotator cv --jobs N`` trains up to N folds at once, each in its own spawned child process with its own
device (one GPU each where there are GPUs; on a CPU, the preset's thread count each). A child never
touches the database: the parent reads the training set once and sends each child its fold's examples
and held-out slices (the child reads those slices' pixels from the DICOM files to predict them). The
child sends its typed events back through a queue (the parent forwards them to ``on_event``) and returns
its weights as safetensors bytes, its out-of-fold predictions and the patients it trained on; the parent
publishes once. The pool is ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` context: a stop
or a failed fold (an error, or a child that died) stops every child and nothing is published. torch is
imported inside the functions only.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from annotator.domain.entities import ImageRef, Prediction
from annotator.domain.errors import Cancelled, FoldFailed
from annotator.domain.events import EpochEnded, OnEvent, Phase, PhaseStarted, StepProgress, no_event
from annotator.domain.progress import ShouldStop, never_stop
from annotator.imaging.dicom_io import as_monochrome2, load_slice

if TYPE_CHECKING:
    from annotator.ml.config import Preset
    from annotator.ml.engine import EpochReport, Pipeline
    from annotator.ml.preprocess import Example, SliceInput
    from annotator.ml.runtime import Precision

POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class FoldJob:
    """Everything one fold needs, picklable: no database, no open files."""

    fold: int
    preset: Preset
    n_classes: int
    class_ordinals: tuple[int, ...]
    seed: int  # the fold's own seed (run seed + fold)
    train: list[Example]
    held: list[Example]
    images: list[ImageRef]  # every slice of the held-out patients to predict, sorted by id
    precision: Precision = "none"  # "bf16" (autocast) or "none", resolved for the run's device


@dataclass(frozen=True, slots=True)
class FoldResult:
    fold: int
    tensors: dict[str, Any]  # "foldK."-prefixed state tensors
    predictions: list[Prediction]
    train_patients: frozenset[str]  # the patients whose slices the fold actually trained on


def epoch_event(report: EpochReport) -> EpochEnded:
    return EpochEnded(report.fold, report.epoch, report.epochs, round(report.loss, 5),
                      round(report.localizer_loss, 5), round(report.train_accuracy, 4),
                      None if report.val_accuracy is None else round(report.val_accuracy, 4),
                      round(report.seconds, 2))


def slice_inputs(images: Sequence[ImageRef], on_event: OnEvent, fold: int | None) -> Iterator[SliceInput]:
    from annotator.ml.preprocess import SliceInput

    for i, im in enumerate(images, start=1):
        assert im.geometry.pixel_spacing is not None
        yield SliceInput(im.id, as_monochrome2(load_slice(im.path)), im.geometry.pixel_spacing)
        if i % 25 == 0 or i == len(images):
            on_event(StepProgress(Phase.PREDICT, i, len(images), fold))


def predictions(pipeline: Pipeline, images: Sequence[ImageRef], ordinals: Sequence[int], fold: int | None,
                on_event: OnEvent, should_stop: ShouldStop) -> list[Prediction]:
    on_event(PhaseStarted(Phase.PREDICT, fold))
    out = []
    for p in pipeline.predict(slice_inputs(images, on_event, fold), should_stop=should_stop):
        out.append(Prediction(model_version_id=0, image_id=p.key, x_px=round(p.x_px, 3), y_px=round(p.y_px, 3),
                              grade=int(ordinals[p.grade_index]), probabilities=p.probabilities, fold=fold))
    return out


def run_fold(job: FoldJob, device: Any, on_event: OnEvent = no_event,
             should_stop: ShouldStop = never_stop) -> FoldResult:
    """Train the fold's pipeline on its training examples and predict its held-out slices."""
    from annotator.ml.engine import Pipeline
    from annotator.ml.runtime import Runtime

    k = job.fold
    pipeline = Pipeline(job.preset, job.n_classes, device)
    on_event(PhaseStarted(Phase.TRAIN, k))
    pipeline.fit(job.train, seed=job.seed, val=job.held, fold=k, should_stop=should_stop,
                 on_epoch=lambda r: on_event(epoch_event(r)), runtime=Runtime(pipeline.device, job.precision))
    preds = predictions(pipeline, job.images, job.class_ordinals, k, on_event, should_stop)
    return FoldResult(k, pipeline.state_tensors(prefix=f"fold{k}."), preds,
                      frozenset(e.patient for e in job.train))


def default_jobs(device: str, threads_per_fold: int) -> int:
    """The number of GPUs ``device`` spreads over, else the CPU cores over the threads each fold uses."""
    from annotator.ml.registry import cuda_device_count

    spec = device.strip().lower()
    if spec.startswith("cuda:"):
        return 1  # one GPU named: one fold at a time on it
    if spec in ("auto", "cuda") and (n := cuda_device_count()) > 0:
        return n
    return max(1, (os.cpu_count() or 1) // max(1, threads_per_fold))


def _fold_devices(device: str, jobs: int) -> list[str]:
    """One device spec per worker: the GPUs in turn for ``auto``/``cuda`` with GPUs, else ``device``."""
    from annotator.ml.registry import cuda_device_count

    n = cuda_device_count() if device.strip().lower() in ("auto", "cuda") else 0
    return [f"cuda:{i % n}" for i in range(jobs)] if n else [device] * jobs


# Worker-process state, set once by the pool's initializer in each child (never in the parent).
_worker: dict[str, Any] = {}


def _init_worker(events: Any, stop: Any, devices: Any) -> None:
    from annotator.ml.device import resolve_device

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole group: the parent stops the pool
    _worker.update(events=events, stop=stop, device=resolve_device(devices.get()))


def _child_fold(job: FoldJob) -> tuple[int, bytes, list[Prediction], frozenset[str], str | None]:
    """The pool's task: run one fold in a child. Weights come back as safetensors bytes (tensors are never
    pickled) and an error as its text (not every exception survives pickling, and one that does not
    would hang the pool)."""
    from annotator.ml.registry import tensors_to_bytes

    events, stop = _worker["events"], _worker["stop"]
    try:
        result = run_fold(job, _worker["device"], lambda e: events.put((job.fold, e)), stop.is_set)
        return result.fold, tensors_to_bytes(result.tensors), result.predictions, result.train_patients, None
    except Exception as exc:
        return job.fold, b"", [], frozenset(), f"{type(exc).__name__}: {exc}"
    finally:
        events.put((job.fold, None))  # this fold's last event: the parent may now report it ended


def run_parallel(jobs: Sequence[FoldJob], n_jobs: int, device: str, on_event: OnEvent,
                 should_stop: ShouldStop, on_fold: Any) -> list[FoldResult]:
    """Run ``jobs`` on a spawned pool of ``n_jobs`` children; ``on_fold(result)`` in the parent as each
    fold ends (after its last event). Cancelled on a stop, FoldFailed (naming the fold) if a fold raises or
    its child dies; either way the children are told to stop (they do at their next batch), the folds not
    started are cancelled, and the pool is shut down before this returns."""
    from annotator.ml.registry import tensors_from_bytes

    ctx = mp.get_context("spawn")
    n_jobs = max(1, min(n_jobs, len(jobs)))
    events: Any = ctx.Queue()
    stop = ctx.Event()
    devices: Any = ctx.Queue()
    for spec in _fold_devices(device, n_jobs):
        devices.put(spec)
    done: dict[int, FoldResult] = {}
    finished: set[int] = set()  # folds whose last event has arrived
    pool = ProcessPoolExecutor(n_jobs, mp_context=ctx, initializer=_init_worker, initargs=(events, stop, devices))
    try:
        pending = {job.fold: pool.submit(_child_fold, job) for job in jobs}
        ready: dict[int, FoldResult] = {}
        while pending or ready:
            if should_stop():
                raise Cancelled("cross-validation cancelled; nothing was saved")
            try:
                fold, event = events.get(timeout=POLL_S)
                if event is None:
                    finished.add(fold)
                else:
                    on_event(event)
            except queue.Empty:
                pass
            for k, future in list(pending.items()):
                if not future.done():
                    continue
                del pending[k]
                try:
                    fold, blob, preds, patients, error = future.result()
                except Exception as exc:  # BrokenProcessPool: the child died (killed, out of memory)
                    error = f"{type(exc).__name__}: {exc}"
                if error is not None:
                    raise FoldFailed(f"fold {k} failed: {error}; nothing was saved")
                ready[k] = FoldResult(fold, tensors_from_bytes(blob), preds, patients)
            for k in [k for k in ready if k in finished]:
                done[k] = ready.pop(k)
                on_fold(done[k])
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    return [done[job.fold] for job in jobs]
