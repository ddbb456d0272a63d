"""Geometry that cannot be right is never stored as usable: the slice imports "mm unavailable" (or without
patient coordinates) and the import result says which value was dropped and why."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import DataElement

from annotator.domain.entities import ImportStatus
from annotator.domain.errors import InputError
from annotator.domain.geometry import ImageGeometry, orientation_problem, spacing_problem, usable_geometry
from annotator.imaging.dicom_io import read_instance
from annotator.services.importing import import_paths
from annotator.storage import catalog
from annotator.storage.database import open_database
from tests.factories import instance

pytestmark = pytest.mark.filterwarnings("ignore")

MR_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "MR_small.dcm"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
INF, NAN = math.inf, math.nan


@pytest.mark.parametrize("spacing", [(0.0, 0.5), (-0.5, 0.5), (NAN, 0.5), (INF, INF), (1e308, 1e308),
                                     (1e-30, 0.5), (0.5, 1e4), (0.5,), (0.5, 0.5, 0.5)])
def test_impossible_spacing_is_dropped_with_a_warning(spacing: tuple[float, ...]) -> None:
    g = ImageGeometry(rows=8, columns=8, pixel_spacing=spacing, image_position=(0.0, 0.0, 0.0),  # type: ignore[arg-type]
                      image_orientation=AXIAL)
    assert not g.has_mm  # even if it were stored, nothing would measure with it
    fixed, warnings = usable_geometry(g)
    assert fixed.pixel_spacing is None and not fixed.has_mm
    assert len(warnings) == 1 and warnings[0].startswith("mm unavailable: PixelSpacing")
    assert fixed.image_orientation == AXIAL and fixed.image_position == (0.0, 0.0, 0.0)
    with pytest.raises(InputError, match="mm unavailable"):
        fixed.distance_mm((0, 0), (1, 1))


@pytest.mark.parametrize(("iop", "why"), [
    ((0.0, 0.0, 0.0, 0.0, 1.0, 0.0), "unit vectors"),
    ((2.0, 0.0, 0.0, 0.0, 2.0, 0.0), "unit vectors"),
    ((1.0, 0.0, 0.0, 1.0, 0.0, 0.0), "not perpendicular"),
    ((1.0, 0.0, 0.0, 0.6, 0.8, 0.0), "not perpendicular"),
    ((NAN, 0.0, 0.0, 0.0, 1.0, 0.0), "finite"),
    ((1.0, 0.0, 0.0, 0.0, INF, 0.0), "finite"),
])
def test_orientation_that_is_not_orthonormal_is_dropped(iop: tuple[float, ...], why: str) -> None:
    g = ImageGeometry(rows=8, columns=8, pixel_spacing=(0.5, 0.5), image_position=(0.0, 0.0, 0.0),
                      image_orientation=iop)  # type: ignore[arg-type]
    fixed, [warning] = usable_geometry(g)
    assert fixed.image_orientation is None and not fixed.has_patient_frame
    assert warning.startswith("no patient coordinates: ImageOrientationPatient") and why in warning
    assert fixed.has_mm  # in-plane distances do not need the orientation


@pytest.mark.parametrize("ipp", [(NAN, 0.0, 0.0), (0.0, -INF, 0.0), (0.0, 0.0, 1e9)])
def test_position_not_finite_or_absurd_is_dropped(ipp: tuple[float, float, float]) -> None:
    fixed, [warning] = usable_geometry(ImageGeometry(rows=8, columns=8, pixel_spacing=(0.5, 0.5),
                                                     image_position=ipp, image_orientation=AXIAL))
    assert fixed.image_position is None and "ImagePositionPatient" in warning


def test_plausible_geometry_passes_unchanged() -> None:
    c, s = 0.71, 0.71  # directions written with two decimals (norm 1.004) are rounding, not nonsense
    for g in (ImageGeometry(rows=8, columns=8, pixel_spacing=(0.3125, 0.3125), image_position=(-10.0, 5.0, 40.0),
                            image_orientation=AXIAL, slice_thickness=4.0),
              ImageGeometry(rows=8, columns=8, pixel_spacing=(0.001, 50.0), image_orientation=(c, s, 0, -s, c, 0)),
              ImageGeometry(rows=8, columns=8)):
        assert usable_geometry(g) == (g, ())
    assert spacing_problem((0.5, 0.5)) is None and orientation_problem(AXIAL) is None


def write(tmp_path: Path, name: str, **raw: str) -> Path:
    """MR_small with elements replaced by raw text (LO VR, so pydicom writes whatever we give it)."""
    ds = pydicom.dcmread(MR_SMALL)
    for keyword, text in raw.items():
        ds[keyword] = DataElement(ds[keyword].tag, "LO", text)
    path = tmp_path / name
    ds.save_as(path)
    return path


@pytest.mark.parametrize(("raw", "field"), [
    ({"PixelSpacing": "0\\0"}, "PixelSpacing"),
    ({"PixelSpacing": "-0.5\\0.5"}, "PixelSpacing"),
    ({"PixelSpacing": "nan\\nan"}, "PixelSpacing"),
    ({"PixelSpacing": "inf\\1"}, "PixelSpacing"),
    ({"PixelSpacing": "1e308\\1e308"}, "PixelSpacing"),
    ({"PixelSpacing": "1e-30\\1"}, "PixelSpacing"),
    ({"PixelSpacing": "0.5"}, "PixelSpacing"),
    ({"PixelSpacing": "a\\b"}, "PixelSpacing"),
])
def test_file_with_impossible_spacing_imports_mm_unavailable(tmp_path: Path, raw: dict[str, str],
                                                             field: str) -> None:
    path = write(tmp_path, "bad.dcm", **raw)
    inst, _ = read_instance(path)
    assert inst.geometry.pixel_spacing is None and not inst.geometry.has_mm
    assert [w.split(":")[0] for w in inst.warnings] == ["mm unavailable"] and field in inst.warnings[0]
    db_file = tmp_path / "p.db"
    db = open_database(f"sqlite:///{db_file}")
    try:
        [r] = import_paths(db, [path])
        assert r.status is ImportStatus.IMPORTED and r.reason.startswith("mm unavailable: PixelSpacing")
        [im] = catalog.images(db)
        assert im.geometry.pixel_spacing is None and not im.geometry.has_mm
        assert im.geometry.image_orientation is not None  # the rest of the geometry stays
    finally:
        db.close()
    with sqlite3.connect(db_file) as con:
        assert con.execute("select pixel_spacing_row, pixel_spacing_col from images").fetchall() == [(None, None)]


@pytest.mark.parametrize("raw", [{"ImageOrientationPatient": "1\\0\\0\\1\\0\\0"},
                                 {"ImageOrientationPatient": "0\\0\\0\\0\\0\\0"},
                                 {"ImageOrientationPatient": "1\\0\\0\\0\\nan\\0"},
                                 {"ImagePositionPatient": "inf\\0\\0"},
                                 {"ImagePositionPatient": "1\\2"}])
def test_file_with_impossible_frame_has_no_patient_coordinates(tmp_path: Path, raw: dict[str, str]) -> None:
    inst, _ = read_instance(write(tmp_path, "frame.dcm", **raw))
    assert not inst.geometry.has_patient_frame and inst.geometry.has_mm
    [warning] = inst.warnings
    assert warning.startswith("no patient coordinates: " + next(iter(raw)))


def test_good_file_has_no_warnings() -> None:
    inst, _ = read_instance(MR_SMALL)
    assert inst.warnings == () and inst.geometry.has_patient_frame


def test_catalog_never_stores_impossible_geometry_whoever_builds_the_record(sqlite_db) -> None:  # type: ignore[no-untyped-def]
    [r] = catalog.import_instances(sqlite_db, [instance(0, spacing=(1e9, 1e9))])
    assert r.status is ImportStatus.IMPORTED and r.reason.startswith("mm unavailable: PixelSpacing")
    [im] = catalog.images(sqlite_db)
    assert im.geometry.pixel_spacing is None and not im.geometry.has_mm


def test_cli_import_prints_the_warning_without_verbose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from annotator.cli import main

    bad = write(tmp_path, "bad.dcm", PixelSpacing="0\\0")
    clean = MR_SMALL.with_name("CT_small.dcm")
    assert main(["--db", f"sqlite:///{tmp_path / 'p.db'}", "import", str(bad), str(clean)]) == 0
    out = capsys.readouterr().out
    assert f"imported  {bad}: mm unavailable: PixelSpacing 0\\0 is outside 0.001-50 mm" in out
    assert str(clean) not in out and "2 imported" in out  # a clean import stays quiet, as before
