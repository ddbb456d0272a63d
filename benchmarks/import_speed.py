"""Import speed: 500 uncompressed 512x512 16-bit slices vs a bare pydicom read loop.

Target (issue 2): the import takes at most 1.5x the bare ``dcmread(f).pixel_array`` loop.
Usage: python benchmarks/import_speed.py [--files 500] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import where  # benchmarks/where.py, beside this script
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from annotator.services.importing import import_paths
from annotator.storage.database import open_database


def write_series(folder: Path, n: int, size: int = 512) -> list[Path]:
    rng = np.random.default_rng(0)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    per_series = 50
    for i in range(n):
        if i % per_series == 0:
            series = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"{meta.MediaStorageSOPInstanceUID}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.Modality = f"BENCH{i // per_series:03d}", "Bench^Patient", "MR"
        ds.SeriesDescription, ds.InstanceNumber = "AX T2", i % per_series + 1
        ds.Rows = ds.Columns = size
        ds.PixelSpacing = [0.5, 0.5]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-128.0, -128.0, float((i % per_series) * 4)]
        ds.SliceThickness = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = 1000, 2000
        ds.PixelData = rng.integers(0, 4096, (size, size), dtype=np.uint16).tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _bare(paths: list[Path]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    for p in paths:
        _ = pydicom.dcmread(p).pixel_array
    return time.perf_counter() - t0, time.process_time() - c0


def _import(folder: Path, db_path: Path, n: int) -> tuple[float, float]:
    db = open_database(f"sqlite:///{db_path}")
    t0, c0 = time.perf_counter(), time.process_time()
    results = import_paths(db, [folder])
    elapsed = time.perf_counter() - t0, time.process_time() - c0
    assert sum(r.status.value == "imported" for r in results) == n, "not every file imported"
    db.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5,
                    help="interleaved bare/import pairs, each import into a fresh database; medians reported")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "dicom"
        folder.mkdir()
        paths = write_series(folder, args.files)
        for p in paths:  # warm the page cache for both contenders
            p.read_bytes()
        print(where.describe(Path(tmp) / "bench0.db"))
        rows = []
        for k in range(args.repeats):
            bare, bare_cpu = _bare(paths)
            imp, imp_cpu = _import(folder, Path(tmp) / f"bench{k}.db", args.files)
            rows.append((bare, imp, imp / bare, imp_cpu / bare_cpu))
            print(f"run {k + 1}: bare {bare:.2f} s, import {imp:.2f} s, ratio {imp / bare:.2f}, "
                  f"cpu ratio {imp_cpu / bare_cpu:.2f}")
    bare, imp, ratio, cpu_ratio = (statistics.median(col) for col in zip(*rows, strict=True))
    print(f"files                 {args.files} (512x512, 16-bit, uncompressed), {args.repeats} runs, medians:")
    print(f"bare dcmread+pixels   {bare:.2f} s  ({args.files / bare:.0f} files/s)")
    print(f"annotator import      {imp:.2f} s  ({args.files / imp:.0f} files/s)")
    print(f"ratio import / bare   {ratio:.2f}  (target <= 1.5; wall clock, median of the per-run ratios)")
    print(f"cpu ratio             {cpu_ratio:.2f}  (CPU seconds of the process, all threads)")


if __name__ == "__main__":
    main()
