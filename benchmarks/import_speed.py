"""Import speed: 500 uncompressed 512x512 16-bit slices vs a bare pydicom read loop.

Target (issue 2): the import takes at most 1.5x the bare ``dcmread(f).pixel_array`` loop.
Usage: python benchmarks/import_speed.py [--files 500] [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "dicom"
        folder.mkdir()
        paths = write_series(folder, args.files)
        for p in paths:  # warm the page cache for both contenders
            p.read_bytes()
        t0, c0 = time.perf_counter(), time.process_time()
        for p in paths:
            _ = pydicom.dcmread(p).pixel_array
        bare, bare_cpu = time.perf_counter() - t0, time.process_time() - c0
        db = open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        t0, c0 = time.perf_counter(), time.process_time()
        results = import_paths(db, [folder])
        imp, imp_cpu = time.perf_counter() - t0, time.process_time() - c0
        assert sum(r.status.value == "imported" for r in results) == args.files, "not every file imported"
        db.close()
    print(f"files                 {args.files} (512x512, 16-bit, uncompressed)")
    print(f"bare dcmread+pixels   {bare:.2f} s  ({args.files / bare:.0f} files/s)")
    print(f"annotator import      {imp:.2f} s  ({args.files / imp:.0f} files/s)")
    print(f"ratio import / bare   {imp / bare:.2f}  (target <= 1.5; wall clock)")
    print(f"cpu ratio             {imp_cpu / bare_cpu:.2f}  (CPU seconds of the process; less sensitive to load)")


if __name__ == "__main__":
    main()
