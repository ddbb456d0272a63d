"""The phantom as a whole lumbar exam: series and tags as a scanner writes them, one frame of reference in
which the axial stacks sit at their discs on the sagittal images, truth for the axial slices only."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest

from annotator.domain.geometry import ImageGeometry
from annotator.imaging.phantom import DEFAULT_PREVALENCE, N_STAGES
from annotator.imaging.phantom_dicom import (
    TRUTH_COLUMNS,
    draw_exams,
    draw_patients,
    generate_dataset,
    read_truth,
)
from annotator.imaging.phantom_exam import (
    AXIAL_LEVELS,
    CORONAL_ORIENTATION,
    SAGITTAL_ORIENTATION,
    SAGITTAL_SLICES,
    SAGITTAL_THICKNESS_MM,
)
from annotator.imaging.phantom_sagittal import CANAL_LABEL, DISCS, render_sagittal

MATRIX = 128
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
DESCRIPTIONS = {"LOCALIZER", "SAG T2", "AX T2 L3-L4", "AX T2 L4-L5", "AX T2 L5-S1"}


def _geometry(ds: pydicom.Dataset) -> ImageGeometry:
    return ImageGeometry(rows=int(ds.Rows), columns=int(ds.Columns),
                         pixel_spacing=tuple(float(x) for x in ds.PixelSpacing),  # type: ignore[arg-type]
                         image_position=tuple(float(x) for x in ds.ImagePositionPatient),  # type: ignore[arg-type]
                         image_orientation=tuple(float(x) for x in ds.ImageOrientationPatient),  # type: ignore[arg-type]
                         slice_thickness=float(ds.SliceThickness))


@pytest.fixture(scope="module")
def exam(tmp_path_factory):
    """Three patients' exams; every file read back, by patient then series description."""
    out = tmp_path_factory.mktemp("exam")
    rows = generate_dataset(out, n_patients=3, seed=21, matrix=MATRIX, compressed_fraction=0.3, exam=True)
    files: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for f in sorted(out.rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        files[str(ds.PatientID)][str(ds.SeriesDescription)].append(ds)
    for series in files.values():
        for items in series.values():
            items.sort(key=lambda d: int(d.InstanceNumber))
    return out, rows, files


def test_each_study_holds_the_series_a_scanner_writes(exam):
    out, rows, files = exam
    assert len(files) == 3
    for series in files.values():
        assert set(series) == DESCRIPTIONS
        every = [ds for items in series.values() for ds in items]
        assert len({ds.StudyInstanceUID for ds in every}) == 1
        assert len({ds.FrameOfReferenceUID for ds in every}) == 1  # one patient coordinate frame
        numbers = {d: {int(ds.SeriesNumber) for ds in items} for d, items in series.items()}
        assert all(len(n) == 1 for n in numbers.values()) and len(set.union(*numbers.values())) == 5
        assert len({ds.SeriesInstanceUID for ds in every}) == 5
        for items in series.values():
            assert [int(ds.InstanceNumber) for ds in items] == list(range(1, len(items) + 1))
            for ds in items:
                geo = _geometry(ds)
                assert float(ds.SliceLocation) == pytest.approx(geo.position_along_normal())
                assert ds.Modality == "MR" and ds.BitsStored == 12
        loc = series["LOCALIZER"]
        assert sorted(tuple(float(x) for x in ds.ImageOrientationPatient) for ds in loc) == sorted(
            [AXIAL, SAGITTAL_ORIENTATION, CORONAL_ORIENTATION])
        assert all("LOCALIZER" in ds.ImageType and ds.Rows < MATRIX for ds in loc)
        sag = series["SAG T2"]
        assert len(sag) == SAGITTAL_SLICES
        assert all(tuple(float(x) for x in ds.ImageOrientationPatient) == SAGITTAL_ORIENTATION for ds in sag)
        xs = [float(ds.ImagePositionPatient[0]) for ds in sag]
        assert np.allclose(np.diff(xs), SAGITTAL_THICKNESS_MM)  # parallel, contiguous, right to left
        for level in AXIAL_LEVELS:
            stack = series[f"AX T2 {level}"]
            assert len(stack) == 3 and all(ds.Rows == MATRIX for ds in stack)
            assert all(tuple(float(x) for x in ds.ImageOrientationPatient) == AXIAL for ds in stack)
            z = [float(ds.ImagePositionPatient[2]) for ds in stack]
            assert np.allclose(np.diff(z), -float(stack[0].SliceThickness))  # contiguous, cranial first
            assert len({tuple(ds.ImagePositionPatient[:2]) for ds in stack}) == 1  # one in-plane position


def test_truth_covers_every_axial_slice_and_nothing_else(exam):
    out, rows, files = exam
    assert (out / "truth.csv").read_text().splitlines()[0] == ",".join(TRUTH_COLUMNS)
    assert read_truth(out) == rows
    by_sop = {r.sop_instance_uid: r for r in rows}
    axial = {}
    for pid, series in files.items():
        for d, items in series.items():
            for ds in items:
                if d.startswith("AX T2 "):
                    axial[ds.SOPInstanceUID] = (pid, d.removeprefix("AX T2 "))
                else:
                    assert ds.SOPInstanceUID not in by_sop
    assert set(by_sop) == set(axial)
    assert all((r.patient_id, r.level) == axial[r.sop_instance_uid] for r in rows)
    assert Counter(r.level for r in rows) == {level: 9 for level in AXIAL_LEVELS}


def test_axial_stacks_sit_at_their_discs_on_the_sagittal_image(exam):
    """Pixels to patient coordinates: the sagittal rendering's disc centres and canal agree with the axial
    stacks' ImagePositionPatient and truth, within a slice thickness."""
    out, rows, files = exam
    truth = {r.sop_instance_uid: r for r in rows}
    exams = draw_exams(3, seed=21)
    for i, (pid, series) in enumerate(sorted(files.items())):
        ex = exams[i]
        mid = series["SAG T2"][SAGITTAL_SLICES // 2]
        sag = _geometry(mid)
        # the labels of the very image in the file (same plane, same noise), so pixels and labels agree
        rendered = render_sagittal(ex.by_level, ex.spine, sag,
                                   np.random.default_rng([ex.study.seed, 24, SAGITTAL_SLICES // 2]),
                                   with_labels=True)
        assert np.array_equal(rendered.pixels, mid.pixel_array)
        labels = rendered.labels
        assert labels is not None
        img = mid.pixel_array.astype(np.float64)
        disc_z = {}
        for level in AXIAL_LEVELS:
            rr, cc = np.nonzero(labels == DISCS.index(level) + 1)
            assert len(rr) > 20, level
            disc_z[level] = sag.pixel_to_patient(float(cc.mean()), float(rr.mean()))[2]
            stack = series[f"AX T2 {level}"]
            centre = stack[len(stack) // 2]  # the slice through the disc centre
            ax = _geometry(centre)
            assert abs(ax.image_position[2] - disc_z[level]) < float(centre.SliceThickness)  # type: ignore[index]
            # the canal centre the experts click, in patient mm, lies in the sagittal canal
            t = truth[centre.SOPInstanceUID]
            p = ax.pixel_to_patient(t.x_px, t.y_px)
            assert abs(p[0] - sag.image_position[0]) < SAGITTAL_THICKNESS_MM  # type: ignore[index]
            col, row = sag.patient_to_pixel(p)
            r, c = int(round(row)), int(round(col))
            assert (labels[r - 1:r + 2, c - 1:c + 2] == CANAL_LABEL).any(), (pid, level)
            if t.stage == 0:  # open canal: bright CSF there on the sagittal image
                assert img[r - 1:r + 2, c - 1:c + 2].max() > 0.6 * np.percentile(img, 99.5), (pid, level)
        assert disc_z["L3-L4"] > disc_z["L4-L5"] > disc_z["L5-S1"]  # cranial to caudal


def test_l4_l5_keeps_the_study_prevalence_and_other_levels_are_milder():
    exams = draw_exams(3000, seed=8)
    share = {level: np.bincount([e.by_level[level].stage for e in exams], minlength=N_STAGES) / len(exams)
             for level in AXIAL_LEVELS}
    assert np.allclose(share["L4-L5"], DEFAULT_PREVALENCE, atol=0.025)
    assert share["L3-L4"][0] > share["L4-L5"][0] + 0.05 and share["L5-S1"][0] > share["L4-L5"][0] + 0.1
    # the L4-L5 level is the single-level phantom's patient (with three slices)
    single = draw_patients(5, seed=8, slices_per_patient=3)
    assert [e.study for e in exams[:5]] == single
    assert all(e.by_level["L3-L4"].table_z_mm > e.study.table_z_mm > e.by_level["L5-S1"].table_z_mm
               for e in exams[:50])


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_exams(exam, tmp_path):
    out, _, _ = exam
    again = tmp_path / "again"
    generate_dataset(again, n_patients=3, seed=21, matrix=MATRIX, compressed_fraction=0.3, exam=True, workers=2)
    assert _tree(out) == _tree(again)
    single = tmp_path / "single"
    generate_dataset(single, n_patients=3, seed=21, matrix=MATRIX, compressed_fraction=0.3)
    assert not set(_tree(single).values()) & set(_tree(out).values())


def test_read_truth_without_level_is_l4_l5_and_a_bad_level_is_named(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("sop_instance_uid,patient_id,x_px,y_px,stage,severity,sac_area_mm2\n"
                   "1.2.3,P1,10.0,20.0,1,0.5,120.0\n")
    (row,) = read_truth(old)
    assert row.level == "L4-L5" and row.stage == 1
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(TRUTH_COLUMNS) + "\n1.2.3,P1,10.0,20.0,1,0.5,120.0,L9-L10\n")
    with pytest.raises(ValueError, match=r"bad\.csv line 2.*L9-L10"):
        read_truth(bad)
