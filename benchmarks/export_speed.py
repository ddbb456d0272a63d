"""Interchange export speed (issue 15 point 7), one function per measurement, on the study's size.

The project: 542 phantom patients with one axial L4-L5 slice each (the seed study's 542 images; written
once as real DICOM, no training), two raters who labelled every slice and a model whose predictions are
registered directly, so 542 slices x 3 readers.

- ``sr``: DICOM SR export (one TID 1500 report per study and reader: 1,626 files). Target: <= 10 s.
- ``deid``: a de-identified bundle of 1,600 DICOM slices (``export_speed_deid.py`` beside this script,
  run as a child with its defaults; it builds its own 320 x 320 project). Target: <= 60 s.

Usage: python benchmarks/export_speed.py [--slices 542] [--matrix 128] [--repeats 3] [--only sr|deid]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import where  # benchmarks/where.py, beside this script

from annotator.domain.entities import ImageRef, LabelAction, ModelKind, Prediction, Role
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.domain.scales import load_scale
from annotator.imaging.phantom_dicom import generate_dataset
from annotator.services import readers as reader_service
from annotator.services.formats import ExportContext, ExportItem
from annotator.services.importing import import_paths
from annotator.services.labelling import LabelService
from annotator.storage import catalog, models_repo, people
from annotator.storage.database import Database, open_database

RATERS = ("expert1", "expert2")


@dataclass
class Project:
    db: Database
    folder: Path
    images: list[ImageRef]
    readers: list[ReaderRef]


def build_project(folder: Path, slices: int, matrix: int) -> Project:
    """The phantom's DICOM (one slice per patient), imported, labelled by two raters and a model."""
    dicom = folder / "dicom"
    generate_dataset(dicom, slices, seed=15, matrix=matrix, slices_per_patient=1, workers=2)
    db = open_database(f"sqlite:///{folder / 'bench.db'}")
    import_paths(db, [dicom])
    images = catalog.images(db)
    rng = np.random.default_rng(15)
    for name in RATERS:
        svc = LabelService(db, people.add_rater(db, name, Role.ANNOTATOR, simulated=True))
        svc.set_many([(im.id, float(rng.integers(20, matrix - 20)), float(rng.integers(20, matrix - 20)),
                       int(rng.integers(0, 4))) for im in images], action=LabelAction.SIMULATED)
    model = models_repo.register(db, name="bench", preset="fast", target="consensus", kind=ModelKind.TRAIN,
                                 weights_path="/nonexistent", weights_sha256="0" * 64, card={})
    models_repo.write_predictions(db, model.id, [
        Prediction(model.id, im.id, float(rng.uniform(20, matrix - 20)), float(rng.uniform(20, matrix - 20)),
                   int(rng.integers(0, 4)), None) for im in images])
    readers = [ReaderRef(ReaderKind.RATER, n) for n in RATERS] + [ReaderRef(ReaderKind.MODEL, str(model.id))]
    return Project(db, folder, images, readers)


def export_items(p: Project) -> list[ExportItem]:
    """One item per slice and reader, as the bundle service gathers them."""
    by_id = {im.id: im for im in p.images}
    items = []
    for ref in p.readers:
        label = ref.key if ref.kind is ReaderKind.RATER else f"model bench (id {ref.key})"
        items += [ExportItem(by_id[i], ref, label, m) for i, m in sorted(reader_service.marks(p.db, ref).items())]
    return items


def measure_sr(p: Project, repeats: int) -> dict[str, float]:
    """DICOM SR export of every (study, reader): wall seconds of ``formats.sr.write``, median of repeats."""
    from annotator.services.formats import sr

    items = export_items(p)
    scale = load_scale(people.get_settings(p.db).scale_code)
    times, cpu = [], []
    files = 0
    for k in range(repeats):
        out = p.folder / f"sr-{k}"
        out.mkdir()
        t0, c0 = time.perf_counter(), time.process_time()
        files = len(sr.write(ExportContext(p.db, items, out, scale)))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        shutil.rmtree(out)
    return {"items": len(items), "files": files, "median_s": statistics.median(times), "min_s": min(times),
            "max_s": max(times), "cpu_median_s": statistics.median(cpu), "target_s": 10.0,
            "load_avg_1min": os.getloadavg()[0]}


MEASUREMENTS: dict[str, Callable[[Project, int], dict[str, float]]] = {"sr": measure_sr}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=542)
    ap.add_argument("--matrix", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=[*sorted(MEASUREMENTS), "deid"], action="append")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="export-speed-"))
    try:
        t0 = time.perf_counter()
        project = build_project(folder, args.slices, args.matrix)
        print(f"project: {len(project.images)} slices x {len(project.readers)} readers, "
              f"built in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs, database on "
              f"{where.filesystem(folder)}")
        for name in [n for n in args.only or list(MEASUREMENTS) if n in MEASUREMENTS]:
            result = MEASUREMENTS[name](project, args.repeats)
            print(f"{name}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in result.items()))
        project.db.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.only is None or "deid" in args.only:
        print("deid: a de-identified csv bundle of 1,600 slices (export_speed_deid.py)", flush=True)
        subprocess.run([sys.executable, str(Path(__file__).with_name("export_speed_deid.py"))], check=True)


if __name__ == "__main__":
    main()
