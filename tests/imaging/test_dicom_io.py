"""Acceptance corpus and contracts of annotator.imaging.dicom_io.

The corpus is every file pydicom ships on disk (never a download): its data folder walked recursively,
plus files of locally installed external sources (pydicom-data) and the download cache, if present.
Run with ``-s`` to see the accept/reject summary.
"""

from __future__ import annotations

import collections
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.encaps import encapsulate
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, generate_uid

from annotator.domain.errors import DicomRejected, InputError
from annotator.imaging.dicom_io import as_monochrome2, iter_dicom_candidates, load_pixels, load_slice, read_instance

pytestmark = pytest.mark.filterwarnings("ignore")

DATA = Path(pydicom.__file__).parent / "data"
TEST_FILES = DATA / "test_files"
MR_SMALL = TEST_FILES / "MR_small.dcm"
TWINS = [
    "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm", "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_padded.dcm",
]
PER_FILE_LIMIT_S = 10.0


def corpus_files() -> list[Path]:
    """Files on disk only: pydicom.data.get_testdata_files() would try to download the online ones."""
    files = {p for p in DATA.rglob("*") if p.is_file()}
    try:
        from pydicom.data.data_manager import external_data_sources

        for source in external_data_sources().values():  # locally installed packages, no network
            files |= {Path(p) for p in source.get_paths("**/*", 0)}
    except Exception:
        pass
    cache = Path.home() / ".pydicom" / "data"  # files an earlier download left behind
    if cache.is_dir():
        files |= {p for p in cache.rglob("*") if p.is_file()}
    return sorted(files)


@dataclass
class Outcome:
    path: Path
    seconds: float
    pixels: np.ndarray | None = None
    reason: str = ""
    unexpected: str = ""


@pytest.fixture(scope="module")
def corpus() -> list[Outcome]:
    outcomes = []
    for path in corpus_files():
        start = time.perf_counter()
        out = Outcome(path, 0.0)
        try:
            _inst, out.pixels = read_instance(path)
        except DicomRejected as exc:
            out.reason = exc.reason
        except BaseException as exc:  # noqa: BLE001 - the point is to catch anything else
            out.unexpected = f"{type(exc).__name__}: {exc}"
        out.seconds = time.perf_counter() - start
        outcomes.append(out)
    accepted = [o for o in outcomes if o.pixels is not None]
    reasons = collections.Counter(o.reason.split(" (")[0].split(":")[0] for o in outcomes if o.reason)
    print(f"\ncorpus: {len(outcomes)} files, {len(accepted)} accepted, "
          f"{len(outcomes) - len(accepted)} rejected, slowest {max(o.seconds for o in outcomes):.3f} s")
    for reason, n in reasons.most_common():
        print(f"  {n:4d} x {reason}")
    return outcomes


def test_corpus_is_large_enough(corpus: list[Outcome]) -> None:
    assert len(corpus) >= 150
    assert sum(o.pixels is not None for o in corpus) >= 30


def test_corpus_only_dicom_rejected_escapes(corpus: list[Outcome]) -> None:
    bad = [f"{o.path.name}: {o.unexpected}" for o in corpus if o.unexpected]
    assert bad == []


def test_corpus_no_file_over_time_limit(corpus: list[Outcome]) -> None:
    slow = [(o.path.name, round(o.seconds, 2)) for o in corpus if o.seconds > PER_FILE_LIMIT_S]
    assert slow == []


def test_corpus_reasons_are_one_line(corpus: list[Outcome]) -> None:
    for o in corpus:
        if o.pixels is None and not o.unexpected:
            assert o.reason.strip(), o.path
            assert "\n" not in o.reason and "\r" not in o.reason, o.path
            assert len(o.reason) <= 200, o.path


def test_corpus_accepted_pixels_equal_pydicom(corpus: list[Outcome]) -> None:
    """The decoder (including the fast native path) returns exactly what pydicom decodes."""
    for o in corpus:
        if o.pixels is None:
            continue
        try:
            expected = pydicom.dcmread(o.path, force=True).pixel_array
        except Exception:  # e.g. no file meta: we infer the transfer syntax, plain pydicom cannot
            continue
        assert o.pixels.shape == expected.shape, o.path
        assert o.pixels.dtype == expected.dtype.newbyteorder("="), o.path
        assert o.pixels.dtype.isnative
        assert np.array_equal(o.pixels, expected), o.path


@pytest.mark.parametrize("name", TWINS)
def test_transfer_syntax_twins_decode_identically(name: str) -> None:
    if not (TEST_FILES / name).exists():
        pytest.skip(f"{name} not shipped with this pydicom")
    ref_inst, ref = read_instance(MR_SMALL)
    inst, pixels = read_instance(TEST_FILES / name)
    assert np.array_equal(pixels, ref)
    assert inst.sop_instance_uid == ref_inst.sop_instance_uid
    assert inst.geometry == ref_inst.geometry


def test_deflated_twin_decodes_identically(tmp_path: Path) -> None:
    ds = pydicom.dcmread(MR_SMALL)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "dfl.dcm")
    inst, pixels = read_instance(tmp_path / "dfl.dcm")
    assert inst.transfer_syntax_uid == DeflatedExplicitVRLittleEndian
    assert np.array_equal(pixels, read_instance(MR_SMALL)[1])
    if (TEST_FILES / "image_dfl.dcm").exists():  # pydicom's own deflated file is another image
        _inst, px = read_instance(TEST_FILES / "image_dfl.dcm")
        assert np.array_equal(px, pydicom.dcmread(TEST_FILES / "image_dfl.dcm").pixel_array)


def test_mr_small_fields() -> None:
    inst, pixels = read_instance(MR_SMALL)
    ds = pydicom.dcmread(MR_SMALL)
    assert inst.path == str(MR_SMALL)
    assert inst.sha256 == hashlib.sha256(MR_SMALL.read_bytes()).hexdigest()
    assert inst.sop_instance_uid == ds.SOPInstanceUID
    assert inst.sop_class_uid == "1.2.840.10008.5.1.4.1.1.4"
    assert inst.study_instance_uid == ds.StudyInstanceUID
    assert inst.series_instance_uid == ds.SeriesInstanceUID
    assert inst.patient_id == ds.PatientID
    assert inst.patient_name == str(ds.PatientName) and isinstance(inst.patient_name, str)
    assert inst.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert inst.modality == "MR"
    assert inst.series_number == ds.SeriesNumber and inst.instance_number == ds.InstanceNumber
    assert inst.bits_stored == 16 and inst.photometric == "MONOCHROME2" and inst.number_of_frames == 1
    assert inst.window_center == pytest.approx(float(ds.WindowCenter))
    assert inst.window_width == pytest.approx(float(ds.WindowWidth))
    g = inst.geometry
    assert (g.rows, g.columns) == (64, 64) == pixels.shape
    assert g.pixel_spacing == (0.3125, 0.3125) and g.has_mm
    assert g.image_position == tuple(float(v) for v in ds.ImagePositionPatient)
    assert g.image_orientation == tuple(float(v) for v in ds.ImageOrientationPatient)
    assert g.slice_thickness == pytest.approx(float(ds.SliceThickness))
    assert pixels.dtype == np.int16 and not pixels.flags.writeable


def test_anisotropic_spacing_keeps_row_column_order(tmp_path: Path) -> None:
    ds = pydicom.dcmread(MR_SMALL)
    ds.PixelSpacing = [0.5, 0.25]  # (row spacing, column spacing)
    ds.save_as(tmp_path / "aniso.dcm")
    assert read_instance(tmp_path / "aniso.dcm")[0].geometry.pixel_spacing == (0.5, 0.25)


@pytest.mark.parametrize("spacing", [None, [0.0, 0.3], [0.3], "abc\\1", [-1, 1], "nan\\1"])
def test_missing_or_invalid_pixel_spacing_means_no_mm(tmp_path: Path, spacing: list | str | None) -> None:
    ds = pydicom.dcmread(MR_SMALL)
    if spacing is None:
        del ds.PixelSpacing
    elif isinstance(spacing, str):  # not even numbers: smuggle the text in under another VR
        ds["PixelSpacing"] = DataElement(0x00280030, "LO", spacing)
    else:
        ds["PixelSpacing"].value = spacing
    ds.save_as(tmp_path / "x.dcm")
    inst, _ = read_instance(tmp_path / "x.dcm")
    assert inst.geometry.pixel_spacing is None
    assert not inst.geometry.has_mm
    with pytest.raises(InputError, match="mm unavailable"):
        inst.geometry.distance_mm((0, 0), (1, 1))


@pytest.mark.parametrize(("name", "expected"), [
    ("MR_truncated.dcm", "truncated pixel data"),
    ("rtplan.dcm", "no pixel data (RT Plan Storage)"),
    ("rtstruct.dcm", "no pixel data (RT Structure Set Storage)"),
    ("reportsi.dcm", "no pixel data (Basic Text SR Storage)"),
    ("test-SR.dcm", "no pixel data (Comprehensive SR Storage)"),
    ("waveform_ecg.dcm", "no pixel data (12-lead ECG Waveform Storage)"),
    ("rtplan_truncated.dcm", "no pixel data"),
    ("JPEG-lossy.dcm", "pixel data cannot be decoded"),
    ("SC_rgb_rle.dcm", "colour images not supported (RGB)"),
    ("examples_palette.dcm", "colour images not supported (PALETTE COLOR)"),
    ("examples_ybr_color.dcm", "multi-frame (30 frames) not supported"),
    ("rtdose_1frame.dcm", "not an image to grade"),
    ("liver_1frame.dcm", "not an image to grade"),
    ("README.txt", "not a DICOM file"),
    ("zipMR.gz", "not a DICOM file"),
])
def test_rejected_with_one_line_reason(name: str, expected: str) -> None:
    if not (TEST_FILES / name).exists():
        pytest.skip(f"{name} not shipped with this pydicom")
    with pytest.raises(DicomRejected) as info:
        read_instance(TEST_FILES / name)
    reason = info.value.reason
    assert expected in reason
    assert reason.strip() and "\n" not in reason
    assert info.value.path == str(TEST_FILES / name)


@pytest.mark.parametrize("content", [b"", os.urandom(4096), b"hello, world\n" * 50, b"\0" * 1000,
                                     b"\0" * 128 + b"DICM" + os.urandom(500)])
def test_garbage_is_rejected(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "junk.dcm"
    p.write_bytes(content)
    with pytest.raises(DicomRejected) as info:
        read_instance(p)
    assert info.value.reason and "\n" not in info.value.reason
    with pytest.raises(DicomRejected):
        load_pixels(p)


def test_random_bytes_many_seeds_never_escape(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    good = MR_SMALL.read_bytes()
    for i in range(60):  # random files and randomly damaged / cut copies of a good file
        data = bytearray(good)
        if i % 3 == 0:
            data = bytearray(rng.bytes(int(rng.integers(1, 5000))))
        elif i % 3 == 1:
            for pos in rng.integers(0, len(data), 20):
                data[pos] = int(rng.integers(0, 256))
        else:
            data = data[: int(rng.integers(1, len(data)))]
        p = tmp_path / f"r{i}.dcm"
        p.write_bytes(bytes(data))
        try:
            read_instance(p)
        except DicomRejected as exc:
            assert exc.reason and "\n" not in exc.reason


def test_unreadable_paths_are_rejected(tmp_path: Path) -> None:
    for p in (tmp_path / "missing.dcm", tmp_path):
        with pytest.raises(DicomRejected, match="cannot read|folder"):
            read_instance(p)
    fifo = tmp_path / "fifo"
    if hasattr(os, "mkfifo"):
        os.mkfifo(fifo)
        with pytest.raises(DicomRejected, match="not a regular file"):
            read_instance(fifo)


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
def test_missing_uids_are_rejected(tmp_path: Path, keyword: str) -> None:
    ds = pydicom.dcmread(MR_SMALL)
    delattr(ds, keyword)
    ds.save_as(tmp_path / "x.dcm")
    with pytest.raises(DicomRejected, match=f"missing {keyword}"):
        read_instance(tmp_path / "x.dcm")


def test_unsupported_transfer_syntax(tmp_path: Path) -> None:
    ds = pydicom.dcmread(MR_SMALL)
    ds.PixelData = encapsulate([ds.PixelData])
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2: no decoder
    ds.save_as(tmp_path / "mpeg.dcm")
    with pytest.raises(DicomRejected, match="unsupported transfer syntax MPEG2"):
        read_instance(tmp_path / "mpeg.dcm")


def test_multi_frame_greyscale_is_rejected(tmp_path: Path) -> None:
    ds = pydicom.dcmread(MR_SMALL)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(tmp_path / "mf.dcm")
    with pytest.raises(DicomRejected, match=r"multi-frame \(2 frames\) not supported"):
        read_instance(tmp_path / "mf.dcm")


def test_dataset_without_preamble_or_meta_is_accepted(tmp_path: Path) -> None:
    ds = pydicom.dcmread(MR_SMALL)
    del ds.file_meta
    ds.preamble = None
    ds.save_as(tmp_path / "raw.dcm", enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert b"DICM" not in (tmp_path / "raw.dcm").read_bytes()[:200]
    inst, pixels = read_instance(tmp_path / "raw.dcm")
    assert inst.transfer_syntax_uid == "1.2.840.10008.1.2"
    assert np.array_equal(pixels, read_instance(MR_SMALL)[1])


@pytest.mark.parametrize("signed", [True, False])
def test_unused_high_bits_match_pydicom(tmp_path: Path, signed: bool) -> None:
    ds = pydicom.dcmread(MR_SMALL)
    raw = np.random.default_rng(1).integers(-32768, 32767, (64, 64)).astype("<i2")
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, int(signed)
    ds.PixelData = raw.tobytes()  # garbage in the 4 unused bits
    ds.save_as(tmp_path / "b12.dcm")
    _inst, pixels = read_instance(tmp_path / "b12.dcm")
    expected = pydicom.dcmread(tmp_path / "b12.dcm").pixel_array
    assert pixels.dtype == expected.dtype and np.array_equal(pixels, expected)
    assert pixels.min() >= (-2048 if signed else 0) and pixels.max() < (2048 if signed else 4096)


def test_load_pixels_applies_rescale(tmp_path: Path) -> None:
    ds = pydicom.dcmread(MR_SMALL)
    ds.RescaleSlope, ds.RescaleIntercept = 2, -1024
    ds.save_as(tmp_path / "rs.dcm")
    stored = read_instance(tmp_path / "rs.dcm")[1]
    out = load_pixels(tmp_path / "rs.dcm")
    assert out.dtype == np.float32 and out.shape == stored.shape
    assert np.array_equal(out, stored.astype(np.float32) * 2 - 1024)
    assert np.array_equal(load_pixels(MR_SMALL), read_instance(MR_SMALL)[1].astype(np.float32))
    with pytest.raises(DicomRejected, match="truncated"):
        load_pixels(TEST_FILES / "MR_truncated.dcm")


def test_monochrome1_keeps_its_values_and_says_so(tmp_path: Path) -> None:
    """Values stay as stored (the readout, the windows); the flag tells the viewer to invert the grey ramp."""
    ds = pydicom.dcmread(MR_SMALL)
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "m1.dcm"
    ds.save_as(path)
    loaded, plain = load_slice(path), load_slice(MR_SMALL)
    assert loaded.monochrome1 and not plain.monochrome1
    np.testing.assert_array_equal(loaded.pixels, plain.pixels)
    flipped = as_monochrome2(loaded)  # what a model sees: the brightest tissue stays the brightest
    np.testing.assert_array_equal(flipped, plain.pixels.max() + plain.pixels.min() - plain.pixels)
    assert int(np.argmax(flipped)) == int(np.argmin(plain.pixels))
    assert as_monochrome2(plain) is plain.pixels


def test_iter_dicom_candidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden_dir").mkdir()
    for rel in ["z.dcm", "a.txt", "b/deep/2", "b/deep/10", "b/1", ".hidden", ".hidden_dir/x.dcm"]:
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_dicom_candidates([tmp_path])]
    assert found == ["a.txt", "z.dcm", "b/1", "b/deep/10", "b/deep/2"]
    # explicit files (hidden too) are yielded, each file once, missing paths skipped
    again = list(iter_dicom_candidates([tmp_path / ".hidden", str(tmp_path / "b"), tmp_path / "b" / "1",
                                        tmp_path / "nope"]))
    assert [p.name for p in again] == [".hidden", "1", "10", "2"]
    assert all(isinstance(p, Path) and p.is_absolute() for p in again)
    monkeypatch.chdir(tmp_path)  # relative input, absolute output
    assert list(iter_dicom_candidates(["b/deep"])) == [tmp_path / "b/deep/10", tmp_path / "b/deep/2"]


def test_importer_speed_within_1_5x_of_bare_pydicom(tmp_path: Path) -> None:
    """read_instance (hash + metadata + decode) vs a bare dcmread().pixel_array loop, 512x512 int16.

    CPU time of this process (not wall time), best of 5 alternating runs: other processes on a busy
    machine do not count against either side."""
    ds = pydicom.dcmread(MR_SMALL)
    ds.Rows = ds.Columns = 512
    rng = np.random.default_rng(0)
    files = []
    for i in range(120):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PixelData = rng.integers(0, 4000, (512, 512), dtype=np.int16).tobytes()
        files.append(tmp_path / f"{i:03d}.dcm")
        ds.save_as(files[-1])

    def bare() -> float:
        t = time.process_time()
        for f in files:
            pydicom.dcmread(f).pixel_array  # noqa: B018
        return time.process_time() - t

    def ours() -> float:
        t = time.process_time()
        for f in files:
            read_instance(f)
        return time.process_time() - t

    runs = [(bare(), ours()) for _ in range(5)]
    best_bare, best_ours = min(r[0] for r in runs), min(r[1] for r in runs)
    print(f"\n120 x 512x512 int16: bare {best_bare * 1e3 / 120:.3f} ms/file, "
          f"read_instance {best_ours * 1e3 / 120:.3f} ms/file, ratio {best_ours / best_bare:.2f}")
    assert best_ours <= 1.5 * best_bare


def test_decoder_panic_becomes_rejection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pylibjpeg-rle is Rust: a corrupt RLE run makes it raise pyo3's PanicException (a BaseException)."""
    monkeypatch.setenv("RUST_BACKTRACE", "0")  # the panic hook still prints one line to stderr
    data = bytearray((TEST_FILES / "MR_small_RLE.dcm").read_bytes())
    data[len(data) - 276] = 202  # one corrupt RLE header byte (found by fuzzing): out-of-bounds run
    (tmp_path / "rle.dcm").write_bytes(bytes(data))
    with pytest.raises(DicomRejected, match="pixel data cannot be decoded"):
        read_instance(tmp_path / "rle.dcm")


def test_one_bit_pixels_take_pydicom_path(tmp_path: Path) -> None:
    """Layouts the fast native path does not handle (here 1-bit packed) are decoded by pydicom."""
    ds = pydicom.dcmread(MR_SMALL)
    bits = np.random.default_rng(3).integers(0, 2, (64, 64), dtype=np.uint8)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.PixelData = np.packbits(bits.ravel(), bitorder="little").tobytes()
    ds.save_as(tmp_path / "bits.dcm")
    _inst, pixels = read_instance(tmp_path / "bits.dcm")
    assert np.array_equal(pixels, bits)
    assert np.array_equal(pixels, pydicom.dcmread(tmp_path / "bits.dcm").pixel_array)
