"""``annotator demo``: build the synthetic demo project (one lumbar MRI exam per patient)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from annotator.domain.settings import AppSettings

if TYPE_CHECKING:
    from annotator.services.project import Database


def _default_dicom_dir(settings: AppSettings, db_arg: str | None, seed: int, patients: int) -> Path:
    if db_arg and "://" not in db_arg and settings.database_file is not None:
        return settings.database_file.with_name(f"{settings.database_file.stem}-dicom")
    return settings.user_data_dir / f"demo-dicom-{patients}-seed{seed}"


def _demo(args: argparse.Namespace) -> int:
    from annotator.services import demo, project

    settings = project.resolve_settings(args.db)
    dicom_dir = Path(args.dicom_dir) if args.dicom_dir else _default_dicom_dir(settings, args.db, args.seed,
                                                                                args.patients)
    if args.db and "://" not in args.db and settings.database_file is not None:
        settings.database_file.parent.mkdir(parents=True, exist_ok=True)
    db = project.open_project(settings)
    if args.if_missing and project.status(db).images > 0:
        print(f"demo project already in {db.url}")
        _model(db, args)
        return 0
    summary = demo.build_demo(db, dicom_dir, patients=args.patients, seed=args.seed, matrix=args.matrix,
                              compressed_fraction=args.compressed, if_missing=args.if_missing,
                              on_progress=lambda d, t, m: print(m, flush=True))
    print(f"demo project in {db.url}: {summary.patients} patients, {summary.imported} images imported, "
          f"{summary.slices} axial slices read by the experts, from {summary.dicom_dir}; labels: "
          + ", ".join(f"{k} {v}" for k, v in summary.labels.items())
          + f"; reader study {summary.study!r}: {summary.reads} reads by the simulated experts")
    _model(db, args)
    return 0


def _model(db: Database, args: argparse.Namespace) -> None:
    from annotator.services import demo

    if args.model == "none":
        return
    print(f"training a {args.model} model on the experts' consensus, then predicting the slices in its plane "
          "(the axial stacks)...", flush=True)
    version = demo.ensure_demo_model(db, preset=args.model, epochs=args.epochs, seed=args.seed)
    if version is None:
        print("a model is already active")
    else:
        print(f"model {version.id} ({version.name}) is active: its point, grade and probabilities show in the "
              "second view")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("demo", help="generate a synthetic lumbar MRI exam per patient (localizer, sagittal T2, "
                                    "axial T2 at L3-L4, L4-L5, L5-S1), import it, add two simulated experts")
    s.add_argument("--patients", type=int, default=40, metavar="N")
    s.add_argument("--seed", type=int, default=0, metavar="S")
    s.add_argument("--dicom-dir", metavar="DIR", help="where to write the DICOM files (default: beside the db)")
    s.add_argument("--matrix", type=int, default=320, help="axial image size in pixels")
    s.add_argument("--compressed", type=float, default=0.1, metavar="FRACTION",
                   help="share of files written RLE / JPEG 2000 lossless")
    s.add_argument("--if-missing", action="store_true",
                   help="build nothing if the project already has images (a missing model is still trained)")
    s.add_argument("--model", default="fast", metavar="PRESET",
                   help="train this preset on the consensus and activate it (default fast, about 20 s; none: no model)")
    s.add_argument("--epochs", type=int, default=None,
                   help="epochs of the demo model (default: half the preset's)")
    s.set_defaults(func=_demo)
