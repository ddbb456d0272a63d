"""Decompression-bomb guards: what a file's header lets us check before any decoder allocates memory.

A decoder allocates its output from Rows x Columns (or from the dimensions inside a JPEG codestream)
before it finds out that the data cannot fill it: a 4 kB RLE file that claims 65535 x 65535 pixels
made the RLE decoder allocate 8 GB and spin for 35 s. These checks reject such files in microseconds:

- no slice may have more than :data:`MAX_PIXELS` pixels (axial MRI: well under a megapixel);
- RLE output is at most 64 times its input (a replicate run turns 2 bytes into at most 128);
- a JPEG, JPEG-LS or JPEG 2000 codestream must declare the dataset's own Rows and Columns;
- a deflated dataset may inflate to at most :data:`MAX_INFLATED` bytes (checked before pydicom,
  which inflates it whole in one call).
"""

from __future__ import annotations

import zlib

from pydicom.pixels.utils import _get_jpg_parameters
from pydicom.uid import UID, RLELossless

MAX_PIXELS = 8192 * 8192
RLE_MAX_RATIO = 64
_ITEM = b"\xfe\xff\x00\xe0"


def _first_fragment(pixel_data: bytes) -> bytes | None:
    """The first fragment after the Basic Offset Table of encapsulated pixel data; None if malformed."""
    pos = 0
    for _ in range(2):  # the offset table item, then the first fragment
        if pixel_data[pos : pos + 4] != _ITEM or len(pixel_data) < pos + 8:
            return None
        length = int.from_bytes(pixel_data[pos + 4 : pos + 8], "little")
        start, pos = pos + 8, pos + 8 + length
    return pixel_data[start:pos]


def _j2k_size(codestream: bytes) -> tuple[int, int] | None:
    """(rows, columns) from a JPEG 2000 SIZ marker segment (ISO/IEC 15444-1 A.5.1), if there is one."""
    start = 0
    if codestream.startswith(b"\x00\x00\x00\x0cjP  "):  # JP2 wrapper: the codestream is in the jp2c box
        start = codestream.find(b"jp2c")
        if start < 0:
            return None
        start += 4
    if codestream[start : start + 4] != b"\xff\x4f\xff\x51" or len(codestream) < start + 28:
        return None
    x, y, x0, y0 = (int.from_bytes(codestream[start + 8 + 4 * i : start + 12 + 4 * i], "big") for i in range(4))
    return y - y0, x - x0


def _codestream_size(tsuid: UID, fragment: bytes) -> tuple[int, int] | None:
    if tsuid.is_encapsulated and fragment[:2] == b"\xff\xd8":  # JPEG and JPEG-LS: start of image
        try:
            info = _get_jpg_parameters(fragment)
        except Exception:
            return None
        return (info["height"], info["width"]) if "height" in info and "width" in info else None
    if fragment[:2] == b"\xff\x4f" or fragment[4:8] == b"jP  ":
        return _j2k_size(fragment)
    return None


def size_problem(rows: int, columns: int, bits_allocated: int, tsuid: str, pixel_data: bytes | None) -> str:
    """Why decoding this single frame must not be attempted ("" when it may).

    ``pixel_data`` is the encapsulated (7FE0,0010) value for compressed transfer syntaxes, else None.
    """
    if rows * columns > MAX_PIXELS:
        return f"image too large: {rows} x {columns} pixels (at most {MAX_PIXELS} per slice)"
    if pixel_data is None:
        return ""
    uid = UID(tsuid)
    expected = rows * columns * max(1, (bits_allocated + 7) // 8)
    if uid == RLELossless and expected > RLE_MAX_RATIO * len(pixel_data):
        return (f"RLE pixel data ({len(pixel_data)} bytes) too short for {rows} x {columns} pixels "
                f"of {bits_allocated} bits")
    fragment = _first_fragment(pixel_data)
    if fragment is None:
        return "malformed encapsulated pixel data (no Basic Offset Table and fragment items)"
    size = _codestream_size(uid, fragment)
    if size is not None and size != (rows, columns):
        return f"codestream is {size[0]} x {size[1]} pixels but Rows x Columns say {rows} x {columns}"
    return ""


MAX_INFLATED = 256 << 20
_DEFLATED = b"1.2.840.10008.1.2.1.99"
_LONG = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}


def _meta_end(data: bytes) -> int | None:
    """Where the dataset starts after the file meta group (explicit VR little endian), if there is one."""
    pos = 132 if data[128:132] == b"DICM" else 0
    start = pos
    while data[pos : pos + 2] == b"\x02\x00" and pos + 8 <= len(data):
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG:
            pos += 12 + int.from_bytes(data[pos + 8 : pos + 12], "little")
        else:
            pos += 8 + int.from_bytes(data[pos + 6 : pos + 8], "little")
    return pos if pos > start else None


def inflate_problem(data: bytes, limit: int = MAX_INFLATED) -> str:
    """Why a Deflated Explicit VR Little Endian file must not be parsed ("" when it may).

    pydicom inflates the whole dataset in one call, with no bound: a 1 MB file can inflate to 1 GB.
    Here it is inflated in bounded steps first, and only its size is kept."""
    head = data[: 132 + 4096]
    end = _meta_end(data) if _DEFLATED in head else None
    if end is None:
        return ""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total, tail = 0, data[end:]
    try:
        while tail and total <= limit and not inflater.eof:
            total += len(inflater.decompress(tail, 1 << 24))
            tail = inflater.unconsumed_tail
    except zlib.error:
        return ""  # a corrupt stream: pydicom says so when it parses
    return f"deflated dataset inflates to more than {limit >> 20} MB" if total > limit else ""
