"""Parallel folds (issue 16, point 1): the same cross-validation with ``--jobs 1`` and ``--jobs 2``.

The ``fast`` preset's 10-fold patient-level CV on the 542-patient single-slice demo (two simulated experts,
as ``model_quality.py`` builds it), on expert 1's labels, first one fold after another in this process,
then two folds at a time in child processes, on the CPU with the preset's threads per fold. Prints both
wall times (the whole ``cross_validate`` call: reading the slices, training, predicting, publishing), the
training time each card records, their ratio (target <= 0.6 on a 2-core machine), and whether the two
runs' out-of-fold predictions and per-fold weights are identical (they must be, on the CPU).

Usage: python benchmarks/cv_parallel.py [--patients 542] [--folds 10] [--epochs E] [--jobs 2]
       [--data DIR] [--work DIR] [--json report.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import model_quality  # benchmarks/model_quality.py, beside this script: the demo project
from safetensors.torch import load_file

from annotator.domain.events import Event, FoldEnded
from annotator.imaging.simulated_experts import default_experts
from annotator.services import training
from annotator.storage import models_repo


def run(db: Any, target: str, args: argparse.Namespace, jobs: int) -> tuple[Any, float]:
    t0 = time.perf_counter()

    def on_event(e: Event) -> None:
        if isinstance(e, FoldEnded):
            print(f"    jobs={jobs}: fold {e.fold} ended, acc {e.figures.accuracy} "
                  f"({time.perf_counter() - t0:.1f} s since the start)", flush=True)

    version = training.cross_validate(db, target, n_folds=args.folds, preset=args.preset, epochs=args.epochs,
                                      seed=args.seed, device="cpu", jobs=jobs, on_event=on_event)
    wall = time.perf_counter() - t0
    print(f"  jobs={jobs}: {wall:.1f} s wall (card: {version.card['training_seconds']} s after reading), "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    return version, wall


def oof(db: Any, version: Any) -> list[tuple[object, ...]]:
    return sorted((p.image_id, p.x_px, p.y_px, p.grade, p.probabilities, p.fold)
                  for p in models_repo.predictions(db, version.id))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_quality.add_project_arguments(ap)
    ap.add_argument("--jobs", type=int, default=2, help="the parallel run's jobs (default 2)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="cv-parallel-"))
    data = args.data or work / "phantom"
    work.mkdir(parents=True, exist_ok=True)
    os.environ["ANNOTATOR_MODELS_DIR"] = str(work / "models")
    print(f"cv --jobs 1 vs --jobs {args.jobs}: preset {args.preset}, {args.patients} patients, {args.folds} folds, "
          f"epochs {args.epochs or 'preset'}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}", flush=True)
    db, _ = model_quality.build_project(data, work, args.patients, args.seed)
    target = f"rater:{default_experts()[0].name}"
    one, wall1 = run(db, target, args, 1)
    many, wall2 = run(db, target, args, args.jobs)
    a, b = load_file(one.weights_path), load_file(many.weights_path)
    same_weights = sorted(a) == sorted(b) and all(a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a)
    same_oof = oof(db, one) == oof(db, many)
    ratio = wall2 / wall1
    figures = {"patients": args.patients, "folds": args.folds, "epochs": one.card["epochs"], "jobs": args.jobs,
               "cpus": os.cpu_count(), "wall_s_jobs1": round(wall1, 1), f"wall_s_jobs{args.jobs}": round(wall2, 1),
               "training_s_jobs1": one.card["training_seconds"],
               f"training_s_jobs{args.jobs}": many.card["training_seconds"],
               "ratio": round(ratio, 3), "target_ratio": 0.6, "identical_out_of_fold": same_oof,
               "identical_weights": same_weights, "n_out_of_fold": len(oof(db, many)),
               "pooled_accuracy": one.card["metrics"]["pooled"]["grades"].get("accuracy")}
    print(f"wall time jobs=1 {wall1:.1f} s, jobs={args.jobs} {wall2:.1f} s, ratio {ratio:.3f} (target <= 0.6); "
          f"training only {one.card['training_seconds']} s vs {many.card['training_seconds']} s", flush=True)
    print(f"out-of-fold predictions identical: {same_oof}; per-fold weights identical: {same_weights}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    db.close()
    return 0 if same_oof and same_weights else 1


if __name__ == "__main__":  # the children are spawned: they import this file and must not run it
    raise SystemExit(main())
