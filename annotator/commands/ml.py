"""``annotator train``, ``predict``, ``cv`` and ``models list|activate``.

Long commands stop cleanly on SIGTERM or Ctrl-C: a handler sets a flag that training checks between
batches; the command then exits non-zero with one line, having published nothing. ``--json-progress``
prints each event of :mod:`annotator.domain.events` as one JSON line (its ``encode``), ending with
``done`` or ``error``, for the GUI, which runs these commands as a child process and reads them with the
same module; otherwise a progress line goes to stderr. ``train --activate`` predicts every slice with
the new model, then activates it: the app's whole "train" button in one command; ``models activate ID
--predict`` does the same for an existing model (its missing predictions first, then the activation).
``--as NAME`` names the rater acting: the services check her right (the policy's) and audit her; without
it a command acts as whoever holds the database, its owner.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from annotator.domain.entities import Rater
from annotator.domain.errors import AnnotatorError, Cancelled
from annotator.domain.events import EpochEnded, Event, Failed, FoldEnded, OnEvent, StepProgress, describe, encode
from annotator.services import models as model_service
from annotator.services import project


class StopFlag:
    """Set by SIGTERM/SIGINT; polled by the training loop through ``should_stop``."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    flag = StopFlag()
    previous = {s: signal.signal(s, flag._handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _reporter(json_progress: bool) -> OnEvent:
    """One JSON line per event, or a one-line progress display on stderr."""
    if json_progress:
        def emit(event: Event) -> None:
            sys.stdout.write(encode(event) + "\n")
            sys.stdout.flush()
        return emit

    tty = sys.stderr.isatty()
    end = "" if tty else "\n"  # a bar redrawn in place on a terminal, one line per step in a log

    def show(event: Event) -> None:
        if isinstance(event, EpochEnded):
            fold = f"fold {event.fold} " if event.fold is not None else ""
            val = f" val acc {event.val_accuracy:.3f}" if event.val_accuracy is not None else ""
            width, done, total = 24, event.epoch, max(1, event.epochs)
            bar = "#" * (width * done // total) + "." * (width - width * done // total)
            sys.stderr.write(f"\r{fold}epoch [{bar}] {done}/{total} loss {event.loss:.3f} "
                             f"acc {event.train_accuracy:.3f}{val}   {end}")
            if tty and done == total:
                sys.stderr.write("\n")
        elif isinstance(event, StepProgress):
            fold = f" fold {event.fold}" if event.fold is not None else ""
            sys.stderr.write(f"\r{event.phase}{fold} {event.done}/{event.total}   {end}")
            if tty and event.done == event.total:
                sys.stderr.write("\n")
        elif isinstance(event, FoldEnded):
            sys.stderr.write(describe(event) + "\n")
        sys.stderr.flush()
    return show


T = TypeVar("T")


def _run(json_progress: bool, work: Callable[[OnEvent], T]) -> T:
    """Run ``work`` with the progress reporter; with --json-progress an error is also the last event
    (the one line on stderr stays, for a reader that does not parse events)."""
    on_event = _reporter(json_progress)
    try:
        return work(on_event)
    except AnnotatorError as exc:
        if json_progress:
            on_event(Failed(str(exc), cancelled=isinstance(exc, Cancelled)))
        raise


def _train(args: argparse.Namespace) -> int:
    from annotator.services import distributed_training, training

    db = project.open_project(args.db)
    actor = _actor(db, args)
    run = distributed_training.train_distributed if args.distributed else training.train
    with stop_on_signals() as flag:
        version = _run(args.json_progress, lambda on_event: run(
            db, args.target, preset=args.preset, epochs=args.epochs, seed=args.seed, threads=args.threads,
            device=args.device, precision=args.precision, predict_all=args.predict, activate=args.activate,
            on_event=on_event, should_stop=flag, actor=actor))
    if version is None:  # a rank other than 0 of a distributed training: rank 0 reports
        return 0
    if not args.json_progress:
        predicted = ", predicted every slice" if args.predict or args.activate else ""
        print(f"registered model {version.id} ({version.name}), weights {version.weights_path}{predicted}"
              + (", active" if version.active else f"; activate it with `annotator models activate {version.id}`"))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from annotator.services import training

    db = project.open_project(args.db)
    with stop_on_signals() as flag:
        version, n, skipped = _run(args.json_progress, lambda on_event: training.predict(
            db, args.model, device=args.device, on_event=on_event, should_stop=flag))
    if not args.json_progress:
        extra = f"; {skipped} slices without PixelSpacing skipped" if skipped else ""
        print(f"model {version.id}: wrote {n} predictions{extra}")
    return 0


def _cv(args: argparse.Namespace) -> int:
    from annotator.services import training

    db = project.open_project(args.db)
    actor = _actor(db, args)
    with stop_on_signals() as flag:
        version = _run(args.json_progress, lambda on_event: training.cross_validate(
            db, args.target, n_folds=args.folds, preset=args.preset, epochs=args.epochs, seed=args.seed,
            threads=args.threads, device=args.device, precision=args.precision, jobs=args.jobs, on_event=on_event,
            should_stop=flag, actor=actor))
    if not args.json_progress:
        pooled = version.card["metrics"]["pooled"]
        g, p = pooled["grades"], pooled["points"]
        print(f"registered cv model {version.id} ({version.name}); reader model:{version.id}")
        print(f"pooled out-of-fold vs {args.target}: accuracy {g.get('accuracy')}, F1 macro {g.get('f1_macro')}, "
              f"F1 weighted {g.get('f1_weighted')}, centre error median {p.get('median_mm')} mm, "
              f"95th percentile {p.get('p95_mm')} mm (n={g.get('n')})")
    return 0


def _models(args: argparse.Namespace) -> int:
    db = project.open_project(args.db)
    if args.models_command == "activate":
        from annotator.services import training

        actor = _actor(db, args)
        with stop_on_signals() as flag:
            v = _run(args.json_progress, lambda on_event: training.activate_model(
                db, args.id, predict=args.predict, device=args.device, on_event=on_event, should_stop=flag,
                actor=actor))
        if not args.json_progress:
            print(f"model {v.id} ({v.name}) is now active")
        return 0
    versions = model_service.list_models(db)
    if args.json:
        print(json.dumps([{"id": v.id, "name": v.name, "preset": v.preset, "target": v.target, "kind": v.kind,
                           "active": v.active, "created_at": v.created_at.isoformat(),
                           "weights_path": v.weights_path, "weights_sha256": v.weights_sha256,
                           "metrics": v.card.get("metrics")} for v in versions]))
        return 0
    if not versions:
        print("no models yet: `annotator train --target rater:NAME`")
    for v in versions:
        pooled = (v.card.get("metrics") or {}).get("pooled") or {}
        acc = (pooled.get("grades") or {}).get("accuracy")
        figure = f"  cv accuracy {acc}" if acc is not None else ""
        print(f"{v.id:4} {'*' if v.active else ' '} {v.kind:5} {v.preset:6} {v.target:24} "
              f"{v.created_at:%Y-%m-%d %H:%M}  {v.name}{figure}")
    return 0


def _device(s: argparse.ArgumentParser) -> None:
    s.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N",
                   help="where the networks run (default auto: a CUDA GPU if torch sees one, else the CPU); "
                        "same seed -> same weights holds on the CPU only")


def _common(s: argparse.ArgumentParser, target: bool = True) -> None:
    if target:
        s.add_argument("--target", required=True, metavar="READER",
                       help="whose labels to learn: rater:NAME or consensus")
    s.add_argument("--preset", default="fast", help="fast (default), paper, or a preset JSON file")
    s.add_argument("--epochs", type=int, default=None, help="override the preset's number of epochs")
    s.add_argument("--seed", type=int, default=0, help="random seed (same seed on a CPU -> same weights)")
    s.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: the preset's, 1); part of the recipe like the seed")
    _device(s)
    s.add_argument("--precision", default="auto", metavar="auto|bf16|fp32",
                   help="training arithmetic (default auto: bf16 autocast on a CUDA GPU that supports it, "
                        "float32 elsewhere; the CPU path is unchanged); recorded in the model card")
    s.add_argument("--json-progress", action="store_true", help="one JSON object per line on stdout")
    if target:
        _as(s)


def _as(s: argparse.ArgumentParser) -> None:
    s.add_argument("--as", dest="as_rater", default=None, metavar="NAME",
                   help="the rater acting, who must have the right (the app passes the signed-in rater); "
                        "audited as her. Without it the command acts as the database's owner")


def _actor(db: Any, args: argparse.Namespace) -> Rater | None:
    """The rater named by --as (the services check her rights); None without --as."""
    return project.acting(db, args.as_rater)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("train", help="train a model on one reader's labels and register it")
    _common(s)
    s.add_argument("--predict", action="store_true", help="then predict every slice with the new model")
    s.add_argument("--activate", action="store_true",
                   help="then predict every slice with the new model and make it the active one")
    s.add_argument("--distributed", action="store_true",
                   help="one rank of a data-parallel training started by torchrun (NCCL on GPUs, gloo on CPUs); "
                        "rank 0 reports and publishes, the others exit 0 (README: multi-GPU and SLURM)")
    s.set_defaults(func=_train)

    s = sub.add_parser("predict", help="write a model's predictions for every slice (default: the active model)")
    s.add_argument("--model", type=int, default=None, metavar="ID")
    _device(s)
    s.add_argument("--json-progress", action="store_true", help="one JSON object per line on stdout")
    s.set_defaults(func=_predict)

    s = sub.add_parser("cv", help="patient-level k-fold cross-validation; out-of-fold predictions as a reader")
    _common(s)
    s.add_argument("--folds", type=int, default=None,
                   help="number of folds (default: the project's setting, 10 as in the study)")
    s.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="folds trained at once, each in its own process (default: one per GPU, else the CPU "
                        "cores over --threads); the same weights on a CPU whatever N")
    s.set_defaults(func=_cv)

    s = sub.add_parser("models", help="list model versions or activate one")
    msub = s.add_subparsers(dest="models_command", required=True)
    ls = msub.add_parser("list", help="list model versions (* = active)")
    ls.add_argument("--json", action="store_true")
    a = msub.add_parser("activate", help="make a trained model the active one")
    a.add_argument("id", type=int)
    a.add_argument("--predict", action="store_true",
                   help="first predict every slice the model has no prediction for, then activate it")
    _device(a)
    a.add_argument("--json-progress", action="store_true", help="one JSON object per line on stdout")
    _as(a)
    s.set_defaults(func=_models)
