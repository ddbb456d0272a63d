"""The same DICOM instance twice is not a conflict: identical decoded pixels under one SOPInstanceUID
are skipped with that reason (whatever the transfer syntax); only different pixels are rejected."""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from annotator.domain.entities import ImportResult, ImportStatus
from annotator.imaging import phantom_dicom
from annotator.services import importing
from annotator.services.importing import import_paths
from annotator.storage import catalog

pytestmark = pytest.mark.filterwarnings("ignore")

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
SAME = "identical decoded pixels"


def by_name(results: list[ImportResult]) -> dict[str, ImportResult]:
    return {Path(r.path).name: r for r in results}


@pytest.fixture(scope="module")
def phantom_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    phantom_dicom.generate_dataset(out, n_patients=1, seed=5, matrix=96, slices_per_patient=1)
    [path] = sorted(out.rglob("*.dcm"))
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    return path


def reencode(src: Path, dst: Path, syntax: str) -> Path:
    ds = pydicom.dcmread(src)
    if syntax in (RLELossless, JPEG2000Lossless):
        ds.compress(syntax, generate_instance_uid=False)
    elif syntax == ImplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = syntax
        dst.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(dst, implicit_vr=True, little_endian=True)
        return dst
    else:
        ds.file_meta.TransferSyntaxUID = syntax
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst)
    assert pydicom.dcmread(dst).file_meta.TransferSyntaxUID == syntax
    return dst


def test_corpus_twins_are_skipped_as_the_same_instance(sqlite_db) -> None:  # type: ignore[no-untyped-def]
    """pydicom's own files: MR_small in eight encodings, chrFren in two character sets, one UID each."""
    results = import_paths(sqlite_db, [TEST_FILES])
    accepted = [r for r in results if r.status is not ImportStatus.REJECTED or "already imported" in r.reason]
    groups = collections.defaultdict(list)
    for r in accepted:
        groups[r.sop_instance_uid].append(r)
    twins = {uid: rs for uid, rs in groups.items() if len(rs) > 1}
    mr_uid = pydicom.dcmread(TEST_FILES / "MR_small.dcm").SOPInstanceUID
    assert len(twins.get(mr_uid, [])) >= 8
    for rs in twins.values():
        assert [r.status for r in rs].count(ImportStatus.IMPORTED) == 1, rs
        for r in rs:
            if r.status is not ImportStatus.IMPORTED:
                assert r.status is ImportStatus.SKIPPED and SAME in r.reason, r
    names = by_name(results)
    assert names["MR_small.dcm"].status is ImportStatus.IMPORTED
    for twin in ("MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_jp2klossless.dcm",
                 "MR_small_jpeg_ls_lossless.dcm", "MR_small_implicit.dcm"):
        assert names[twin].status is ImportStatus.SKIPPED, names[twin]
        assert names[twin].reason.startswith(f"same instance as {TEST_FILES / 'MR_small.dcm'}")
    assert catalog.image_by_sop(sqlite_db, mr_uid).path == str(TEST_FILES / "MR_small.dcm")


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, DeflatedExplicitVRLittleEndian,
                                    ImplicitVRLittleEndian])
def test_reencoded_phantom_is_skipped(sqlite_db, phantom_file: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                      syntax: str) -> None:
    [first] = import_paths(sqlite_db, [phantom_file])
    assert first.status is ImportStatus.IMPORTED
    copy = reencode(phantom_file, tmp_path / "other" / "slice.dcm", syntax)
    assert copy.read_bytes() != phantom_file.read_bytes()
    [again] = import_paths(sqlite_db, [copy])
    assert again.status is ImportStatus.SKIPPED
    assert again.reason == f"same instance as {phantom_file}: {SAME}, other encoding"
    assert catalog.counts(sqlite_db).images == 1
    assert catalog.image_by_sop(sqlite_db, first.sop_instance_uid).path == str(phantom_file)


@pytest.mark.parametrize("change", ["pixel", "rescale", "polarity", "shape"])
def test_different_pixels_under_one_uid_are_rejected(sqlite_db, phantom_file: Path,  # type: ignore[no-untyped-def]
                                                     tmp_path: Path, change: str) -> None:
    import_paths(sqlite_db, [phantom_file])
    ds = pydicom.dcmread(phantom_file)
    if change == "pixel":
        px = ds.pixel_array.copy()
        px[10, 10] += 1
        ds.PixelData = px.tobytes()
    elif change == "rescale":  # same stored values, other values shown: not the same image
        ds.RescaleSlope, ds.RescaleIntercept = 2, 0
    elif change == "polarity":
        ds.PhotometricInterpretation = "MONOCHROME1"
    else:
        px = ds.pixel_array  # the top half: equal values where both have pixels, another shape
        ds.Rows = px.shape[0] // 2
        ds.PixelData = px[: ds.Rows].tobytes()
    ds.compress(RLELossless, generate_instance_uid=False)
    ds.save_as(tmp_path / "conflict.dcm")
    [r] = import_paths(sqlite_db, [tmp_path / "conflict.dcm"])
    assert r.status is ImportStatus.REJECTED
    assert r.reason == f"SOPInstanceUID already imported from {phantom_file} with different content " \
                       "(decoded pixels differ)"
    assert catalog.counts(sqlite_db).images == 1


def test_pixels_are_decoded_only_when_the_uid_collides_with_other_bytes(  # type: ignore[no-untyped-def]
        sqlite_db, phantom_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The import of new files (the benchmark's case) and of byte-identical copies never decodes twice."""
    calls: list[str] = []
    real = importing.read_decoded
    monkeypatch.setattr(importing, "read_decoded", lambda p: calls.append(str(p)) or real(p))
    new = [p for p in sorted(TEST_FILES.glob("*.dcm")) if p.name.startswith(("CT_small", "JPEG2000.dcm"))]
    results = import_paths(sqlite_db, [phantom_file, *new])
    assert [r.status for r in results] == [ImportStatus.IMPORTED] * len(results) and len(results) >= 2
    shutil.copy(phantom_file, tmp_path / "copy.dcm")
    assert [r.status for r in import_paths(sqlite_db, [tmp_path / "copy.dcm"])] == [ImportStatus.SKIPPED]
    assert calls == []
    [r] = import_paths(sqlite_db, [reencode(phantom_file, tmp_path / "rle.dcm", RLELossless)])
    assert r.status is ImportStatus.SKIPPED
    assert calls == [str(phantom_file), str(tmp_path / "rle.dcm")]


def test_stored_file_gone_or_changed_cannot_prove_sameness(sqlite_db, phantom_file: Path,  # type: ignore[no-untyped-def]
                                                           tmp_path: Path) -> None:
    original = tmp_path / "a" / "orig.dcm"
    original.parent.mkdir()
    shutil.copy(phantom_file, original)
    import_paths(sqlite_db, [original])
    rle = reencode(original, tmp_path / "b" / "rle.dcm", RLELossless)
    data = bytearray(original.read_bytes())
    data[-1] ^= 0xFF  # the stored file changed since it was imported: its pixels prove nothing
    original.write_bytes(bytes(data))
    [r] = import_paths(sqlite_db, [rle])
    assert r.status is ImportStatus.REJECTED and r.reason.endswith("could not be compared)")
    original.unlink()
    [r] = import_paths(sqlite_db, [rle])
    assert r.status is ImportStatus.REJECTED and r.reason.endswith("could not be compared)")
    assert catalog.image_by_sop(sqlite_db, r.sop_instance_uid).path == str(original)


def test_same_pixels_compares_values_not_bytes(phantom_file: Path, tmp_path: Path) -> None:
    from annotator.imaging.dicom_io import read_decoded

    a = read_decoded(phantom_file)
    b = read_decoded(reencode(phantom_file, tmp_path / "j2k.dcm", JPEG2000Lossless))
    assert a.sha256 != b.sha256 and a.same_pixels(b) and b.same_pixels(a)
    assert np.array_equal(a.stored, b.stored)
