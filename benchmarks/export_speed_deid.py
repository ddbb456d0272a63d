"""De-identified export speed: a csv bundle of 1,600 phantom DICOM slices (issue 15, point 7: <= 60 s).

Builds 400 phantom L4-5 stacks of 4 slices at 320 x 320 (20 % RLE or JPEG 2000 Lossless, copied without
re-encoding), imports them, labels every slice as one simulated rater, then times ``export --format csv
--deidentify`` through the service (the CLI's path), twice: the second export must give byte-identical
DICOM copies (the same pseudonyms). Prints one line per figure; nothing is kept.
Usage: python benchmarks/export_speed_deid.py [--patients 400] [--slices 4] [--format csv]
"""

from __future__ import annotations

import argparse
import filecmp
import tempfile
import time
from pathlib import Path

import where  # benchmarks/where.py, beside this script

from annotator.domain.entities import LabelAction, Role
from annotator.imaging.phantom_dicom import generate_dataset, read_truth
from annotator.services import interchange
from annotator.services.importing import import_paths
from annotator.services.labelling import LabelService
from annotator.storage import catalog, people
from annotator.storage.database import open_database

TARGET_S = 60.0


def _size_mb(root: Path) -> float:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patients", type=int, default=400)
    ap.add_argument("--slices", type=int, default=4, help="slices per patient (400 x 4 = 1,600)")
    ap.add_argument("--format", default="csv")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="export-deid-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        generate_dataset(tmp / "dicom", args.patients, seed=15, slices_per_patient=args.slices,
                         compressed_fraction=0.2)
        truth = {r.sop_instance_uid: r for r in read_truth(tmp / "dicom" / "truth.csv")}
        db = open_database(f"sqlite:///{tmp / 'bench.db'}")
        print(where.describe(tmp / "bench.db"))
        import_paths(db, [tmp / "dicom"])
        rater = people.add_rater(db, "expert", Role.ANNOTATOR, simulated=True)
        images = catalog.images(db)
        LabelService(db, rater).set_many([(im.id, round(truth[im.sop_instance_uid].x_px),
                                           round(truth[im.sop_instance_uid].y_px), truth[im.sop_instance_uid].stage)
                                          for im in images], action=LabelAction.SIMULATED)
        print(f"set-up (phantom, import, labels): {time.perf_counter() - t0:.1f} s for {len(images)} slices")
        times = []
        for run in ("a", "b"):
            request = interchange.ExportRequest(args.format, tmp / f"bundle-{run}", ("rater:expert",), None, True)
            t = time.perf_counter()
            summary = interchange.export(db, request)
            times.append(time.perf_counter() - t)
            print(f"export {run}: {times[-1]:.2f} s, {summary.slices} slices, {summary.items} rows, "
                  f"{summary.dicom_copies} DICOM copies, {_size_mb(summary.path):.1f} MB, "
                  f"{summary.slices / times[-1]:.0f} slices/s, {len(summary.warnings)} burned-in warnings")
        a, b = tmp / "bundle-a" / "dicom", tmp / "bundle-b" / "dicom"
        names = sorted(p.name for p in a.iterdir())
        same = names == sorted(p.name for p in b.iterdir()) and not filecmp.cmpfiles(a, b, names, shallow=False)[1]
        print(f"two exports give byte-identical copies: {same}")
        best = min(times)
        verdict = "PASS" if best <= TARGET_S and same else "FAIL"
        print(f"{verdict}: de-identified {args.format} bundle of {len(images)} slices in {best:.2f} s "
              f"(target {TARGET_S:.0f} s)")
        db.close()
        return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
