"""Seeded mutations of pydicom's test corpus for benchmarks/import_fuzz.py.

Case N of seed S is always the same bytes: one corpus file (three in four from the files the importer
accepts as they are) changed by one to three mutations, after a new SOPInstanceUID in two cases of five.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OD",
        b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI",
        b"UL", b"UN", b"UR", b"US", b"UT", b"UV"}
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_BYTES = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE, 0x20, 0x5C)
_LENGTHS = (0, 1, 2, 3, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFF, 0x80000000, 0x10000)
_SPACING = ("0\\0", "-0.5\\0.5", "nan\\nan", "inf\\1", "1e308\\1e308", "1e-30\\1", "1e9\\1", "0.5", "a\\b",
            "\\", "0.5\\0.5\\0.5", "-inf\\-inf", "0.0001\\0.0001", "99999\\1")
_ORIENT = ("0\\0\\0\\0\\0\\0", "1\\0\\0\\1\\0\\0", "2\\0\\0\\0\\2\\0", "nan\\0\\0\\0\\1\\0", "1\\0\\0\\0\\0.5\\0",
           "1\\0\\0\\0\\1", "inf\\0\\0\\0\\1\\0", "1e308\\0\\0\\0\\1e308\\0", "x\\y\\z\\1\\2\\3")
_POSITION = ("nan\\0\\0", "inf\\-inf\\0", "1e308\\0\\0", "1e9\\1e9\\1e9", "1\\2", "", "\\\\")
_DIMS = {"Rows": (0, 1, 2, 255, 4096, 8192, 16384, 32768, 65535), "Columns": (0, 1, 3, 1024, 8193, 65535),
         "BitsAllocated": (0, 1, 7, 8, 12, 16, 32, 64, 65535), "BitsStored": (0, 1, 17, 64, 65535),
         "SamplesPerPixel": (0, 2, 3, 65535), "PixelRepresentation": (2, 65535),
         "NumberOfFrames": ("0", "-1", "1", "2", "999999999", "1e9", "abc", "4294967296")}


@dataclass
class Source:
    name: str
    data: bytes
    accepted: bool
    lengths: list[tuple[int, int]] = field(default_factory=list)  # (offset of a length field, its width)


def load_corpus() -> list[Source]:
    from annotator.domain.errors import DicomRejected
    from annotator.imaging.dicom_io import read_instance

    sources = []
    for path in sorted(p for p in TEST_FILES.rglob("*") if p.is_file()):
        try:
            read_instance(path)
            accepted = True
        except DicomRejected:
            accepted = False
        data = path.read_bytes()
        sources.append(Source(str(path.relative_to(TEST_FILES)), data, accepted, _length_fields(data)))
    return sources


def _length_fields(data: bytes) -> list[tuple[int, int]]:
    """Offsets of element length fields, found by parsing the file with pydicom and locating its tags."""
    try:
        ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data), force=True)
        tags = {int(e.tag) for e in ds.iterall()} | {int(e.tag) for e in getattr(ds, "file_meta", {}).values()}
    except Exception:
        return []
    out = []
    for tag in tags:
        needle = (tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little")
        pos = data.find(needle)
        while pos >= 0 and len(out) < 4000:
            vr = data[pos + 4 : pos + 6]
            if vr in _LONG_VRS:
                out.append((pos + 8, 4))
            elif vr in _VRS:
                out.append((pos + 6, 2))
            else:
                out.append((pos + 4, 4))
            pos = data.find(needle, pos + 4)
    return sorted(out)


def _rewrite(data: bytes, edit: object) -> bytes | None:
    """Parse with pydicom, apply ``edit(ds)``, write back; None when pydicom cannot do either."""
    try:
        ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data), force=True)
        edit(ds)  # type: ignore[operator]
        out = pydicom.filebase.DicomBytesIO()
        ds.save_as(out, enforce_file_format=False)
        return out.getvalue()
    except Exception:
        return None


def _raw(ds: pydicom.Dataset, keyword: str, text: str) -> None:
    """Put ``text`` in an element as is (LO VR: pydicom writes whatever it is given)."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    ds[tag] = pydicom.DataElement(tag, "LO", text)


def _nested(data: bytes, rng: np.random.Generator) -> bytes:
    """Insert a sequence nested ``depth`` deep before the pixel data (or at the end)."""
    depth = int(math.exp(rng.uniform(0, math.log(50_000))))
    pos = data.rfind(b"\xe0\x7f\x10\x00")
    explicit = pos >= 0 and data[pos + 4 : pos + 6] in _VRS
    pos = len(data) if pos < 0 else pos
    tag = b"\x08\x00\x40\x11"  # (0008,1140) Referenced Image Sequence
    undefined = b"\xff\xff\xff\xff"
    item, item_end, seq_end = b"\xfe\xff\x00\xe0", b"\xfe\xff\x0d\xe0\0\0\0\0", b"\xfe\xff\xdd\xe0\0\0\0\0"
    head = tag + (b"SQ\0\0" if explicit else b"")
    if rng.random() < 0.7:
        body = (head + undefined + item + undefined) * depth + (item_end + seq_end) * depth
        if rng.random() < 0.3:  # closers missing
            body = body[: len(body) - 16 * int(rng.integers(1, depth + 1))]
    else:  # defined lengths, right or wrong
        body = b""
        for _ in range(depth):
            n = len(body) if rng.random() < 0.9 else int(rng.integers(0, 2**32))
            body = head + (len(item) + 4 + n).to_bytes(4, "little") + item + n.to_bytes(4, "little") + body
    return data[:pos] + body + data[pos:]


def mutate(src: Source, other: Source, rng: np.random.Generator) -> tuple[bytes, list[str]]:
    data, kinds = src.data, []
    if rng.random() < 0.4:  # a new instance UID: the file can be imported rather than collide
        uid = pydicom.uid.generate_uid(entropy_srcs=[str(rng.integers(2**62))])
        new = _rewrite(data, lambda ds: setattr(ds, "SOPInstanceUID", uid))
        if new is not None:
            data, kinds = new, ["new uid"]
    for _ in range(int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))):
        kind = str(rng.choice(["bits", "bytes", "truncate", "length", "nested", "dims", "geometry", "splice"],
                              p=[0.2, 0.1, 0.1, 0.15, 0.08, 0.15, 0.15, 0.07]))
        buf = bytearray(data)
        if kind in ("bits", "bytes") and buf:
            head = rng.random() < 0.6  # most flips land in the header, where parsing decides things
            span = min(len(buf), 2048) if head else len(buf)
            for pos in rng.integers(0, span, min(32, int(rng.geometric(0.35)))):
                if kind == "bits":
                    buf[pos] ^= 1 << int(rng.integers(0, 8))
                else:
                    buf[pos] = int(rng.choice(_BYTES))
            data = bytes(buf)
        elif kind == "truncate" and buf:
            keep = rng.uniform(0.7, 1.0) if rng.random() < 0.6 else rng.random()  # mostly inside the pixels
            data = bytes(buf[: int(keep * len(buf))])
        elif kind == "length" and src.lengths:
            pos, width = src.lengths[int(rng.integers(0, len(src.lengths)))]
            if pos + width <= len(buf):
                value = int(rng.choice(_LENGTHS)) if rng.random() < 0.7 else int(rng.integers(0, 2**32))
                buf[pos : pos + width] = (value % (1 << 8 * width)).to_bytes(width, "little")
                data = bytes(buf)
        elif kind == "nested":
            data = _nested(data, rng)
        elif kind == "dims":
            keyword = str(rng.choice(list(_DIMS)))
            value = rng.choice(_DIMS[keyword])
            setter = (lambda ds, k=keyword, v=value: _raw(ds, k, str(v))) if keyword == "NumberOfFrames" \
                else (lambda ds, k=keyword, v=value: setattr(ds, k, int(v)))
            data = _rewrite(data, setter) or data
        elif kind == "geometry":
            keyword, values = [("PixelSpacing", _SPACING), ("ImageOrientationPatient", _ORIENT),
                               ("ImagePositionPatient", _POSITION)][int(rng.integers(0, 3))]
            text = str(rng.choice(values))
            data = _rewrite(data, lambda ds, k=keyword, t=text: _raw(ds, k, t)) or data
        elif kind == "splice":
            cut, cut2 = int(rng.integers(0, len(data) + 1)), int(rng.integers(0, len(other.data) + 1))
            data = data[:cut] + other.data[cut2:]
        else:
            continue
        kinds.append(kind)
    return data, kinds


def make_case(sources: list[Source], seed: int, case: int) -> tuple[bytes, str]:
    rng = np.random.default_rng([seed, case])
    pool = [s for s in sources if s.accepted] if rng.random() < 0.75 else sources
    src, other = pool[int(rng.integers(0, len(pool)))], sources[int(rng.integers(0, len(sources)))]
    data, kinds = mutate(src, other, rng)
    return data, f"{'+'.join(kinds) or 'unchanged'} of {src.name}"
