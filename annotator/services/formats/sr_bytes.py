"""Encoded pieces of an SR content tree, joined as bytes (Explicit VR Little Endian, UTF-8).

pydicom encodes a dataset at tens of microseconds per element, so the SR writer encodes every piece
that repeats (a reader's document head, a measurement group's constant items, a study's image library)
once and joins the bytes: sequences and items of undefined length (delimited, PS3.5 7.5) need no length
computed over their content. What comes out is parsed back and compared with highdicom's document by a
test.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Sequence

import pydicom
import pydicom.charset
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence as DicomSequence

CONTENT_SEQUENCE = 0x0040A730
_UTF8 = pydicom.charset.convert_encodings(["ISO_IR 192"])
_ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
_ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_SEQ_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
_CONTENT_HEAD = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)


def elements(ds: Dataset) -> bytes:
    """A dataset's elements, encoded (nested sequences with explicit lengths)."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds, parent_encoding=_UTF8)
    return bytes(fp.getvalue())


def item(ds: Dataset) -> bytes:
    """A whole content item as one sequence item."""
    return _ITEM + elements(ds) + _ITEM_END


def head(ds: Dataset) -> bytes:
    """A container item's elements except its Content Sequence (the last tag of a content item that
    has no SCOORD data), to be joined with :func:`container`."""
    rest = Dataset({tag: ds[tag] for tag in ds.keys() if tag != CONTENT_SEQUENCE})  # noqa: SIM118 (iterating a Dataset gives elements)
    if any(tag > CONTENT_SEQUENCE for tag in rest.keys()):  # noqa: SIM118
        raise ValueError("a container item with elements after its Content Sequence")
    return elements(rest)


def content(children: Iterable[bytes]) -> bytes:
    """A Content Sequence (undefined length) of encoded items."""
    return _CONTENT_HEAD + b"".join(children) + _SEQ_END


def container(head_bytes: bytes, children: Iterable[bytes]) -> bytes:
    """A container item: its head, then its children as its Content Sequence."""
    return _ITEM + head_bytes + content(children) + _ITEM_END


def _short(tag: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def ui(tag: int, uid: str) -> bytes:
    raw = uid.encode("ascii")
    return _short(tag, b"UI", raw + b"\0" * (len(raw) % 2))


def ut(tag: int, text: str) -> bytes:
    raw = text.encode("utf-8")
    raw += b" " * (len(raw) % 2)
    return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, b"UT", 0, len(raw)) + raw


def fl(tag: int, values: Iterable[float]) -> bytes:
    vals = list(values)
    return _short(tag, b"FL", struct.pack(f"<{len(vals)}f", *vals))


def ul(tag: int, value: int) -> bytes:
    return _short(tag, b"UL", struct.pack("<I", value))


def fd(tag: int, value: float) -> bytes:
    return _short(tag, b"FD", struct.pack("<d", value))


def sq(tag: int, items: Iterable[bytes]) -> bytes:
    """A sequence of undefined length holding encoded items."""
    return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, b"SQ", 0, 0xFFFFFFFF) + b"".join(items) + _SEQ_END


def wrap(elements_bytes: bytes) -> bytes:
    """Encoded elements as one sequence item."""
    return _ITEM + elements_bytes + _ITEM_END


_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def by_tag(ds: Dataset) -> dict[int, bytes]:
    """Each element of a dataset encoded, by tag (to be joined in tag order with others); values are
    decoded with the dataset's own character set first, then encoded as UTF-8."""
    blob = elements(Dataset({tag: ds[tag] for tag in ds.keys()}))  # noqa: SIM118
    out: dict[int, bytes] = {}
    pos = 0
    while pos < len(blob):
        group, elem, vr = struct.unpack_from("<HH2s", blob, pos)
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", blob, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", blob, pos + 6)
            start = pos + 8
        if length == 0xFFFFFFFF:  # undefined length: encode this dataset element by element instead
            return {int(tag): elements(Dataset({tag: ds[tag]})) for tag in ds.keys()}  # noqa: SIM118
        out[(group << 16) | elem] = blob[pos:start + length]
        pos = start + length
    return out


def joined(parts: dict[int, bytes]) -> bytes:
    return b"".join(parts[tag] for tag in sorted(parts))


class Spliced:
    """An item whose elements are encoded once, except the ones given anew each time (by tag)."""

    def __init__(self, ds: Dataset) -> None:
        self.parts = by_tag(ds)

    def __call__(self, varying: dict[int, bytes]) -> bytes:
        return wrap(joined({**self.parts, **varying}))


def encode_items(items: Sequence[Dataset]) -> bytes:
    """Content items as bytes (Explicit VR Little Endian, the SR's transfer syntax)."""
    wrapper = Dataset()
    wrapper.SpecificCharacterSet = "ISO_IR 192"
    wrapper.ContentSequence = DicomSequence(list(items))
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, wrapper, implicit_vr=False, little_endian=True)
    return buf.getvalue()


def decode_items(blob: bytes) -> list[Dataset]:
    """Content items parsed back from :func:`encode_items`'s bytes: plain pydicom datasets, which encode
    much faster than highdicom's content item objects."""
    return list(pydicom.dcmread(io.BytesIO(blob), force=True).ContentSequence)
