"""Huge Rows/Columns are rejected before any decoder allocates: a 6 kB RLE file claiming 65535 x 65535
pixels used to make the RLE decoder allocate 8 GB and run for 35 s."""

from __future__ import annotations

import resource
import time
import zlib
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

from annotator.domain.errors import DicomRejected
from annotator.imaging.dicom_io import read_instance
from annotator.imaging.pixel_limits import MAX_PIXELS, _meta_end, inflate_problem, size_problem

pytestmark = pytest.mark.filterwarnings("ignore")

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
SOURCES = {  # file -> what the dimensions are checked against before decoding
    "MR_small_RLE.dcm": "RLE pixel data",
    "MR_small_jpeg_ls_lossless.dcm": "codestream is 64 x 64",
    "MR_small_jp2klossless.dcm": "codestream is 64 x 64",
    "JPGExtended.dcm": "codestream is 1024 x 256",
    "MR_small_bigendian.dcm": "truncated pixel data",
    "MR_small.dcm": "truncated pixel data",
}


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("name", sorted(SOURCES))
@pytest.mark.parametrize("side", [65535, 8000, 3000])
def test_huge_dimensions_are_rejected_before_decoding(tmp_path: Path, name: str, side: int) -> None:
    ds = pydicom.dcmread(TEST_FILES / name)
    ds.Rows = ds.Columns = side
    ds.save_as(tmp_path / name)
    rss, start = _max_rss_mb(), time.perf_counter()
    with pytest.raises(DicomRejected) as info:
        read_instance(tmp_path / name)
    assert time.perf_counter() - start < 1.0
    assert _max_rss_mb() - rss < 200  # no multi-gigabyte output buffer was ever allocated
    expected = "image too large: 65535 x 65535 pixels" if side * side > MAX_PIXELS else SOURCES[name]
    assert info.value.reason.startswith(expected) or expected in info.value.reason, info.value.reason


def test_size_problem_rules() -> None:
    assert size_problem(512, 512, 16, "1.2.840.10008.1.2.1", None) == ""
    assert "too large" in size_problem(8193, 8192, 16, "1.2.840.10008.1.2.1", None)
    rle = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\xfe\xff\x00\xe0\x10\x00\x00\x00" + b"\x00" * 16
    assert size_problem(4, 4, 16, "1.2.840.10008.1.2.5", rle) == ""  # 32 bytes from 32: fine
    assert "too short" in size_problem(64, 64, 16, "1.2.840.10008.1.2.5", rle)  # 8192 bytes from 32
    assert "malformed encapsulated" in size_problem(4, 4, 16, "1.2.840.10008.1.2.5", b"\x00" * 64)


def test_deflate_bomb_is_rejected_before_pydicom_inflates_it(tmp_path: Path) -> None:
    """A 300 kB deflated file whose dataset inflates to 300 MB (pydicom would inflate it in one call)."""
    ds = pydicom.dcmread(TEST_FILES / "MR_small.dcm")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "small.dcm")
    good = (tmp_path / "small.dcm").read_bytes()
    end = _meta_end(good)
    assert end is not None and inflate_problem(good) == ""
    size = 300 << 20
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [good[:end], z.compress(b"\x09\x00\x10\x10OB\x00\x00" + size.to_bytes(4, "little"))]
    zeros = bytes(1 << 20)
    parts += [z.compress(zeros) for _ in range(size >> 20)] + [z.flush()]
    (tmp_path / "bomb.dcm").write_bytes(b"".join(parts))
    assert (tmp_path / "bomb.dcm").stat().st_size < 1 << 20
    rss, start = _max_rss_mb(), time.perf_counter()
    with pytest.raises(DicomRejected, match="deflated dataset inflates to more than 256 MB"):
        read_instance(tmp_path / "bomb.dcm")
    assert time.perf_counter() - start < 2.0
    assert _max_rss_mb() - rss < 100
