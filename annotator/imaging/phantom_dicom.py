"""Write the synthetic phantom as real DICOM studies plus a ``truth.csv`` (numpy/scipy/pydicom only).

Layout: ``out_dir/<PatientID>/<hash>.dcm`` (file names carry no slice order) and ``out_dir/truth.csv``
with one row per axial slice that has truth. One study per patient: by default one axial series "AX T2"
of 3-5 contiguous slices at L4-5 (the study's setting); with ``exam=True`` a lumbar exam as a scanner
writes it (``phantom_exam``: "LOCALIZER", "SAG T2", "AX T2 L3-L4", "AX T2 L4-L5", "AX T2 L5-S1" in one
frame of reference), with truth for the axial slices of each level only.
Everything (UIDs, dates, names, pixels, which files are compressed) follows from the seed and the
parameters, so two runs with the same arguments write byte-identical files, with or without workers.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import math
import multiprocessing
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    RLELossless,
)

from annotator.imaging.phantom import (
    DEFAULT_PREVALENCE,
    DEFAULT_SCANNER,
    STORED_MAX,
    PatientSpec,
    Scanner,
    draw_patient,
)
from annotator.imaging.phantom_exam import (
    AXIAL_ORIENTATION,
    LOCALIZER,
    SAGITTAL_SLICES,
    STUDY_LEVEL,
    ExamImage,
    ExamSpec,
    axial_images,
    draw_exam,
    exam_images,
)
from annotator.imaging.phantom_sagittal import DISCS

TRUTH_FILE = "truth.csv"
TRUTH_COLUMNS = ("sop_instance_uid", "patient_id", "x_px", "y_px", "stage", "severity", "sac_area_mm2", "level")
_OPTIONAL_COLUMNS = {"level": STUDY_LEVEL}  # truth files written before the exam had no level: all L4-L5
CODECS = {"rle": RLELossless, "jpeg2000": JPEG2000Lossless}
SERIES_DESCRIPTION = "AX T2"
SERIES_NUMBER = 4
IMAGE_ORIENTATION = AXIAL_ORIENTATION
LOCALIZER_IMAGES = 3
_SERIES_MINUTES = {1: 1, 2: 3, 3: 7, 4: 9, 5: 11}  # series start after the study start, by SeriesNumber
_EPOCH = dt.date(2016, 1, 4)


@dataclass(frozen=True, slots=True)
class TruthRow:
    sop_instance_uid: str
    patient_id: str
    x_px: float  # column of the canal (dural sac) centre, pixel (0,0) centre = ImagePositionPatient
    y_px: float  # row
    stage: int  # 0..3 (Lee 0-3 ~ Schizas A-D)
    severity: float  # latent severity in [0, 1]
    sac_area_mm2: float
    level: str = STUDY_LEVEL  # the disc level of the slice's stack ("L3-L4", "L4-L5", "L5-S1")


@dataclass(frozen=True, slots=True)
class _Job:
    out_dir: str
    spec: PatientSpec
    patient_id: str
    matrix: int
    fingerprint: tuple[str, ...]
    codecs: tuple[str, ...]  # per image, in writing order: "" (uncompressed), "rle" or "jpeg2000"
    exam: ExamSpec | None = None  # the whole exam (``spec`` is then its L4-L5 level)
    monochrome1: tuple[bool, ...] = ()  # per image, in writing order: stored inverted (low values bright)

    def images(self) -> Iterator[ExamImage]:
        if self.exam is not None:
            return exam_images(self.exam, self.matrix)
        return axial_images(self.spec, self.matrix, SERIES_DESCRIPTION, SERIES_NUMBER, STUDY_LEVEL)


def patient_id_for(seed: int, index: int) -> str:
    return f"PH{seed}-{index + 1:04d}"


_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "annotator/imaging/phantom")


def _uid(fingerprint: Sequence[str], *parts: object) -> str:
    """Deterministic UID: 2.25 + a name-based (version 5) UUID of the dataset fingerprint and the parts."""
    name = "|".join([*fingerprint, *map(str, parts)])
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


def _ds_num(v: float) -> str:
    """A decimal string (DS, at most 16 characters) that reads back as the same value to ~1e-9."""
    text = f"{v:.10g}"
    return "0" if text in ("-0", "0") else text


def _window(img: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(img, [1.0, 99.7])
    return float(round((lo + hi) / 2)), float(max(round(hi - lo), 1))


def _uids(job: _Job, image: ExamImage) -> tuple[str, str]:
    """(SeriesInstanceUID, SOPInstanceUID); the single-series phantom keeps its historical names."""
    fp, i = job.fingerprint, job.spec.index
    if job.exam is None:
        return _uid(fp, i, "series"), _uid(fp, i, "sop", image.instance_number - 1)
    return _uid(fp, i, "series", image.series_number), _uid(fp, i, "sop", image.series_number, image.instance_number)


def _dicom(job: _Job, image: ExamImage, sop: str, series_uid: str, monochrome1: bool = False) -> Dataset:
    spec = job.spec
    fp = job.fingerprint
    img = image.pixels
    geo = image.geometry
    assert geo.pixel_spacing is not None and geo.image_position is not None and geo.image_orientation is not None
    k = image.instance_number - 1
    days = int(np.random.default_rng([spec.seed, 11]).integers(0, 2500))
    study_date = _EPOCH + dt.timedelta(days=days)
    secs = 7 * 3600 + (spec.seed % (11 * 3600))
    t0 = dt.datetime.combine(study_date, dt.time()) + dt.timedelta(seconds=secs)
    t_series = t0 + dt.timedelta(minutes=_SERIES_MINUTES.get(image.series_number, 9))
    t_image = t_series + dt.timedelta(seconds=4 * k)
    localizer = image.series_description == LOCALIZER
    age = 35 + spec.seed % 51
    birth = dt.date(study_date.year - age, 1 + spec.seed % 12, 1 + (spec.seed // 12) % 28)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = UID(sop)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "ANNOTATOR_PH1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"] if localizer else ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.InstanceCreationDate = t_image.strftime("%Y%m%d")
    ds.InstanceCreationTime = t_image.strftime("%H%M%S")
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study_date.strftime("%Y%m%d")
    ds.StudyTime = t0.strftime("%H%M%S")
    ds.SeriesTime = t_series.strftime("%H%M%S")
    ds.AcquisitionTime = ds.ContentTime = t_image.strftime("%H%M%S")
    ds.AccessionNumber = f"A{spec.seed % 10**12:012d}"
    ds.Modality = "MR"
    ds.Manufacturer = "annotator synthetic phantom"
    ds.InstitutionName = "Synthetic"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "L-SPINE"
    ds.SeriesDescription = image.series_description
    ds.ManufacturerModelName = "L4-5 axial T2 phantom" if job.exam is None else "lumbar spine exam phantom"
    ds.PatientName = f"PHANTOM^{job.patient_id}"
    ds.PatientID = job.patient_id
    ds.PatientBirthDate = birth.strftime("%Y%m%d")
    ds.PatientSex = "MF"[spec.seed % 2]
    ds.PatientAge = f"{age:03d}Y"
    ds.BodyPartExamined = "LSPINE"
    ds.ScanningSequence = "GR" if localizer else "SE"
    ds.SequenceVariant = "SP" if localizer else "SK"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D"
    thickness = geo.slice_thickness if geo.slice_thickness is not None else spec.slice_thickness_mm
    ds.SliceThickness = _ds_num(thickness)
    ds.RepetitionTime = "8.6" if localizer else "3500"
    ds.EchoTime = "4" if localizer else "100"
    ds.MagneticFieldStrength = "1.5"
    ds.SpacingBetweenSlices = _ds_num(thickness)
    ds.EchoTrainLength = 1 if localizer else 16
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = _uid(fp, spec.index, "study")
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = image.series_number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = image.instance_number
    ds.ImagePositionPatient = [_ds_num(x) for x in geo.image_position]
    ds.ImageOrientationPatient = [_ds_num(x) for x in geo.image_orientation]
    ds.FrameOfReferenceUID = _uid(fp, spec.index, "frame")
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = _ds_num(image.slice_location)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.Rows = geo.rows
    ds.Columns = geo.columns
    ds.PixelSpacing = [_ds_num(x) for x in geo.pixel_spacing]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    wc, ww = _window(img)
    if monochrome1:  # as some scanners store it: the same image and window, low values meant bright
        img = STORED_MAX - np.asarray(img, dtype=np.int32)
        wc = STORED_MAX - wc
    ds.WindowCenter = _ds_num(wc)
    ds.WindowWidth = _ds_num(ww)
    ds.ImageComments = "synthetic phantom, not a patient"
    ds.PixelData = np.ascontiguousarray(img, dtype="<u2").tobytes()
    return ds


def _file_name(sop: str) -> str:
    return hashlib.sha256(sop.encode("ascii")).hexdigest()[:16] + ".dcm"


def _write_patient(job: _Job) -> list[TruthRow]:
    folder = Path(job.out_dir) / job.patient_id
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, image in enumerate(job.images()):
        series_uid, sop = _uids(job, image)
        ds = _dicom(job, image, sop, series_uid, bool(job.monochrome1 and job.monochrome1[k]))
        codec = job.codecs[k]
        if codec:
            ds.compress(CODECS[codec], generate_instance_uid=False)
        ds.save_as(folder / _file_name(sop), enforce_file_format=True)
        truth = image.truth
        if truth is not None:
            rows.append(TruthRow(sop, job.patient_id, round(truth.x_px, 4), round(truth.y_px, 4), truth.stage,
                                 truth.severity, truth.sac_area_mm2, image.level or STUDY_LEVEL))
    return rows


def draw_patients(n_patients: int, seed: int, prevalence: Sequence[float] = DEFAULT_PREVALENCE,
                  slices_per_patient: int | None = None, scanner: Scanner = DEFAULT_SCANNER) -> list[PatientSpec]:
    """The specs ``generate_dataset`` renders: patient i from its own stream (seed, i)."""
    if seed < 0:
        raise ValueError("seed must be >= 0")
    return [draw_patient(np.random.default_rng([seed, i]), tuple(prevalence), index=i,
                         n_slices=slices_per_patient, scanner=scanner) for i in range(n_patients)]


def draw_exams(n_patients: int, seed: int, prevalence: Sequence[float] = DEFAULT_PREVALENCE,
               slices_per_level: int | None = None, scanner: Scanner = DEFAULT_SCANNER) -> list[ExamSpec]:
    """The exams ``generate_dataset(exam=True)`` renders: patient i's L4-L5 from the stream (seed, i), its
    other levels and spine from (seed, i, 7)."""
    if seed < 0:
        raise ValueError("seed must be >= 0")
    return [draw_exam(np.random.default_rng([seed, i]), tuple(prevalence), index=i, n_slices=slices_per_level,
                      level_seed=(seed, i), scanner=scanner) for i in range(n_patients)]


def _n_images(spec: PatientSpec, exam: ExamSpec | None) -> int:
    if exam is None:
        return spec.n_slices
    return LOCALIZER_IMAGES + SAGITTAL_SLICES + sum(s.n_slices for s in exam.levels)


def generate_dataset(out_dir: str | os.PathLike[str], n_patients: int, seed: int, matrix: int = 320,
                     compressed_fraction: float = 0.0,
                     prevalence: Sequence[float] = DEFAULT_PREVALENCE,
                     slices_per_patient: int | None = None,
                     codecs: Sequence[str] = ("rle", "jpeg2000"),
                     workers: int = 1, exam: bool = False, scanner: Scanner = DEFAULT_SCANNER,
                     monochrome1_fraction: float = 0.0) -> list[TruthRow]:
    """Write ``n_patients`` phantom studies and ``truth.csv`` under ``out_dir``; return the truth rows.

    By default each study is one L4-5 axial stack of ``slices_per_patient`` slices (None: 3-5); with
    ``exam`` a whole lumbar exam (localizer, sagittal T2, axial T2 stacks of ``slices_per_patient``
    slices, None: 3, at L3-L4, L4-L5 and L5-S1; ``prevalence`` is L4-L5's). ``matrix`` is the axial
    slices' size. ``compressed_fraction`` of the files (exactly, rounded) are written RLE Lossless or
    JPEG 2000 Lossless (``codecs`` alternate at random); the rest Explicit VR Little Endian. Pixels and
    UIDs do not depend on the compression, nor on ``workers`` (processes). ``scanner`` sets how the
    axial slices are acquired (field of view, contrast, noise, coil bias; default: the demo's look), and
    ``monochrome1_fraction`` of the files (exactly, rounded) are stored MONOCHROME1 (inverted, as some
    scanners write them; the importer turns them back for the models). Both at their defaults write
    what earlier versions wrote, byte for byte.
    """
    if not 0.0 <= compressed_fraction <= 1.0:
        raise ValueError("compressed_fraction must be in [0, 1]")
    if not 0.0 <= monochrome1_fraction <= 1.0:
        raise ValueError("monochrome1_fraction must be in [0, 1]")
    unknown = [c for c in codecs if c not in CODECS]
    if unknown or not codecs:
        raise ValueError(f"codecs must be some of {sorted(CODECS)}, got {list(codecs)!r}")
    exams: list[ExamSpec | None]
    if exam:
        exams = list(draw_exams(n_patients, seed, prevalence, slices_per_patient, scanner))
        specs = [e.study for e in exams if e is not None]
    else:
        specs = draw_patients(n_patients, seed, prevalence, slices_per_patient, scanner)
        exams = [None] * len(specs)
    fingerprint = (str(seed), str(matrix), ",".join(f"{p:.6g}" for p in prevalence),
                   str(slices_per_patient)) + (("exam",) if exam else ())
    if scanner != DEFAULT_SCANNER:  # other settings, other UIDs (the default keeps the historical ones)
        fingerprint += (repr(scanner),)
    if monochrome1_fraction:
        fingerprint += (f"monochrome1={monochrome1_fraction:.6g}",)
    counts = [_n_images(s, e) for s, e in zip(specs, exams, strict=True)]
    total = sum(counts)
    crng = np.random.default_rng([seed, 2**31 + 7])
    chosen = np.zeros(total, dtype=bool)
    chosen[crng.permutation(total)[: int(round(compressed_fraction * total))]] = True
    which = crng.integers(0, len(codecs), total)
    inverted = np.zeros(total, dtype=bool)
    if monochrome1_fraction:  # its own stream: the compression choice stays as it was
        mrng = np.random.default_rng([seed, 2**31 + 11])
        inverted[mrng.permutation(total)[: int(round(monochrome1_fraction * total))]] = True
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    pos = 0
    for spec, ex, n in zip(specs, exams, counts, strict=True):
        cod = tuple(codecs[which[pos + k]] if chosen[pos + k] else "" for k in range(n))
        inv = tuple(bool(v) for v in inverted[pos:pos + n]) if monochrome1_fraction else ()
        pos += n
        jobs.append(_Job(str(out), spec, patient_id_for(seed, spec.index), matrix, fingerprint, cod, ex, inv))
    if workers > 1 and len(jobs) > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            chunk = max(1, len(jobs) // (workers * 8))
            results = list(pool.map(_write_patient, jobs, chunksize=chunk))
    else:
        results = [_write_patient(j) for j in jobs]
    rows = [r for rs in results for r in rs]
    write_truth(out / TRUTH_FILE, rows)
    return rows


def write_truth(path: str | os.PathLike[str], rows: Iterable[TruthRow]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(TRUTH_COLUMNS)
        for r in rows:
            w.writerow([r.sop_instance_uid, r.patient_id, f"{r.x_px:.4f}", f"{r.y_px:.4f}", r.stage,
                        f"{r.severity:.6f}", f"{r.sac_area_mm2:.3f}", r.level])


def read_truth(path: str | os.PathLike[str]) -> list[TruthRow]:
    """Read a ``truth.csv`` (or the folder holding one); a file without ``level`` is all L4-L5."""
    p = Path(path)
    if p.is_dir():
        p = p / TRUTH_FILE
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in TRUTH_COLUMNS if c not in (reader.fieldnames or []) and c not in _OPTIONAL_COLUMNS]
        if missing:
            raise ValueError(f"{p}: missing columns {missing}")
        has_level = "level" in (reader.fieldnames or [])
        out = []
        for i, rec in enumerate(reader, start=2):
            try:
                level = rec["level"] if has_level else _OPTIONAL_COLUMNS["level"]
                if level not in DISCS:
                    raise ValueError(f"level {level!r} is not one of {', '.join(DISCS)}")
                out.append(TruthRow(rec["sop_instance_uid"], rec["patient_id"], float(rec["x_px"]),
                                    float(rec["y_px"]), int(rec["stage"]), float(rec["severity"]),
                                    float(rec["sac_area_mm2"]), level))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{p} line {i}: {e}") from e
    return out


def pixel_spacing_by_uid(out_dir: str | os.PathLike[str]) -> dict[str, tuple[float, float]]:
    """(row, column) PixelSpacing of every DICOM file under ``out_dir``, by SOPInstanceUID."""
    out: dict[str, tuple[float, float]] = {}
    for f in sorted(Path(out_dir).rglob("*.dcm")):
        ds = pydicom.dcmread(f, stop_before_pixels=True,
                             specific_tags=["SOPInstanceUID", "PixelSpacing"])
        rs, cs = (float(x) for x in ds.PixelSpacing)
        if not (math.isfinite(rs) and math.isfinite(cs)):
            continue
        out[str(ds.SOPInstanceUID)] = (rs, cs)
    return out
