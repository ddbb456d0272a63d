"""Read DICOM files for the importer and the viewer (pydicom + numpy only).

Contracts
---------
- :func:`iter_dicom_candidates` yields every regular, non-hidden file under the given paths; it does not
  judge what is DICOM. The importer sends each one through :func:`read_instance`, which accepts it or
  raises :class:`DicomRejected` with a one-line reason. No other exception escapes for a bad file.
- The app grades single 2-D greyscale slices. Accepted: one frame (NumberOfFrames absent or 1),
  SamplesPerPixel 1, MONOCHROME1 or MONOCHROME2, with SOPInstanceUID, StudyInstanceUID and
  SeriesInstanceUID. Rejected with a reason: non-DICOM, no pixel data, multi-frame, colour (including
  PALETTE COLOR), segmentations and RT dose grids, unsupported transfer syntaxes, pixel data that cannot
  be decoded (truncated, corrupt), and decompression bombs, judged from the header before any decoder
  allocates (:mod:`annotator.imaging.pixel_limits`: huge Rows x Columns, RLE or a JPEG codestream that
  cannot fill them, a deflated dataset that inflates past 256 MB).
- Geometry that cannot be right (PixelSpacing non-finite, zero, negative or absurd; an orientation that
  is not orthonormal; a position that is not finite) is dropped, not stored as usable, and named in
  ``DicomInstance.warnings`` ("mm unavailable: PixelSpacing ..."); see ``domain.geometry.usable_geometry``.
- Files without the 128-byte preamble and "DICM" prefix are read with ``force=True``; they are accepted
  only if they parse to a dataset with SOP UIDs and pixel data. A missing transfer syntax is inferred
  from how the dataset parsed (implicit/explicit VR, byte order), never for encapsulated pixel data.
- :func:`read_instance` returns the *stored* pixel values as pydicom decodes them (no rescale, no VOI,
  MONOCHROME1 not inverted), read-only, in native byte order. :func:`load_pixels` applies the Modality LUT
  (RescaleSlope/RescaleIntercept or a Modality LUT Sequence) and returns float32 for display;
  :func:`load_slice` also says whether the file is MONOCHROME1 (low values bright), which the viewer
  shows with an inverted grey ramp (the values read out stay the stored ones), and
  :func:`as_monochrome2` flips for models, so that they always see CSF bright on T2.
- Each file is read from disk once: the bytes are hashed (SHA-256) and parsed from memory.
- :func:`read_decoded` decodes a file for comparison: two files are the same image when
  :meth:`DecodedImage.same_pixels` holds, whatever their transfer syntax.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import stat
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from annotator.domain.entities import DicomInstance
from annotator.domain.errors import DicomRejected
from annotator.domain.geometry import MM_UNAVAILABLE, ImageGeometry, usable_geometry
from annotator.imaging.elements import ascii_value as _ascii
from annotator.imaging.elements import first_number as _first
from annotator.imaging.elements import int_value as _int
from annotator.imaging.elements import text_value as _text
from annotator.imaging.elements import us_value as _us
from annotator.imaging.pixel_limits import inflate_problem, size_problem
from annotator.imaging.walk import iter_dicom_candidates

__all__ = ["iter_dicom_candidates", "read_instance", "load_pixels", "load_slice", "as_monochrome2", "LoadedSlice",
           "DecodedImage", "read_decoded"]

_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_COLOUR = ("RGB", "YBR", "PALETTE", "HSV", "ARGB", "CMYK", "XYB")
_MAX_REASON = 200
# Objects that carry pixel data but are not images a rater grades.
_NOT_GRADABLE = {
    "1.2.840.10008.5.1.4.1.1.66.4": "segmentation",  # Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.481.2": "dose grid",  # RT Dose Storage
}
_FLOAT_PIXELS = ("FloatPixelData", "DoubleFloatPixelData")
_NATIVE_LE = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian})


# ----------------------------------------------------------------------------------------------- reading


def _one_line(text: object, limit: int = _MAX_REASON) -> str:
    s = "; ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _reject(path: str | os.PathLike[str], reason: str) -> DicomRejected:
    return DicomRejected(os.fspath(path), _one_line(reason) or "rejected")


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        mode = os.stat(path).st_mode  # before open(): opening a FIFO would block
        if stat.S_ISDIR(mode):
            os.listdir(path)  # a folder the walker could not list: this raises its reason
        elif stat.S_ISREG(mode):
            with open(path, "rb") as fh:
                return fh.read()
    except OSError as exc:
        raise _reject(path, f"cannot read: {exc.strerror or exc}") from None
    raise _reject(path, "a folder, not a file" if stat.S_ISDIR(mode) else "not a regular file")


def _sop_class_name(ds: Dataset) -> str:
    uid = _ascii(ds, "SOPClassUID") or _ascii(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID")
    if not uid:
        return "unknown SOP class"
    name = UID(uid).name
    return name if name and name != uid else f"SOP class {uid}"


def _parse(path: str | os.PathLike[str], data: bytes) -> tuple[Dataset, memoryview | None]:
    """Parse ``data`` up to the pixel data; raise DicomRejected if it is not a DICOM dataset.

    Uncompressed little-endian pixel data (the common case) is returned as a zero-copy slice of
    ``data`` and left out of the dataset: copying 0.5 MB costs as much as parsing the header. In any
    other case (compressed, big endian, deflated, no pixel data) the whole dataset is parsed.
    """
    if not data:
        raise _reject(path, "not a DICOM file (empty file)")
    if problem := inflate_problem(data):
        raise _reject(path, problem)
    forced = False
    bio = io.BytesIO(data)
    try:
        ds = pydicom.dcmread(bio, stop_before_pixels=True)
    except InvalidDicomError:
        forced, bio = True, io.BytesIO(data)
        try:
            ds = pydicom.dcmread(bio, stop_before_pixels=True, force=True)
        except Exception:
            raise _reject(path, "not a DICOM file") from None
    except Exception as exc:
        raise _reject(path, f"unreadable DICOM header: {type(exc).__name__}: {_one_line(exc)}") from None
    native = _native_slice(data, bio.tell(), ds)
    if native is None:
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception as exc:
            raise _reject(path, f"unreadable DICOM: {type(exc).__name__}: {_one_line(exc)}") from None
    # A forced parse of arbitrary bytes "succeeds" with junk tags: demand what an image must have.
    has_pixels = native is not None or "PixelData" in ds
    if forced and not (_ascii(ds, "SOPClassUID") or _ascii(ds, "SOPInstanceUID") or has_pixels):
        raise _reject(path, "not a DICOM file")
    return ds, native


def _native_slice(data: bytes, pos: int, ds: Dataset) -> memoryview | None:
    """The value of a defined-length little-endian (7FE0,0010) element starting at ``pos``, if any."""
    implicit, little = ds.original_encoding
    tsuid = _ascii(getattr(ds, "file_meta", None), "TransferSyntaxUID")
    if data[pos : pos + 4] != b"\xe0\x7f\x10\x00" or not little or (tsuid and tsuid not in _NATIVE_LE):
        return None
    if implicit:
        start, length = pos + 8, int.from_bytes(data[pos + 4 : pos + 8], "little")
    elif data[pos + 4 : pos + 6] in (b"OB", b"OW", b"UN"):
        start, length = pos + 12, int.from_bytes(data[pos + 8 : pos + 12], "little")
    else:
        return None
    if length == 0xFFFFFFFF:  # encapsulated
        return None
    return memoryview(data)[start : start + length]  # shorter than length if the file is truncated


@functools.lru_cache(maxsize=64)
def _decoder_problem(tsuid: str) -> str:
    """Why pixel data in transfer syntax ``tsuid`` cannot be decoded here ("" when it can)."""
    uid = UID(tsuid)
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        label = uid.name if uid.name != str(uid) else "unknown"
        return f"unsupported transfer syntax {label} ({uid})"
    if not decoder.is_available:
        return f"no decoder installed for transfer syntax {uid.name} ({uid})"
    return ""


def _transfer_syntax(path: str | os.PathLike[str], ds: Dataset, native: memoryview | None) -> str:
    meta = getattr(ds, "file_meta", None)
    tsuid = _ascii(meta, "TransferSyntaxUID")
    if not tsuid:  # no file meta (read with force): infer from how the dataset parsed
        if native is None and ds["PixelData"].is_undefined_length:
            raise _reject(path, "transfer syntax missing and pixel data is compressed")
        implicit, little = ds.original_encoding
        if implicit is None:
            implicit, little = True, True
        if implicit and not little:
            raise _reject(path, "implicit VR big endian is not a valid transfer syntax")
        tsuid = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        tsuid = ImplicitVRLittleEndian if implicit else tsuid
        ds.file_meta = meta if meta is not None else FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = tsuid
    problem = _decoder_problem(str(tsuid))
    if problem:
        raise _reject(path, problem)
    return str(tsuid)


def _validate(path: str | os.PathLike[str], ds: Dataset, native: memoryview | None) -> str:
    """Check everything that can be checked without decoding; return the transfer syntax UID."""
    if native is None and "PixelData" not in ds:
        if any(k in ds for k in _FLOAT_PIXELS):
            raise _reject(path, f"floating-point pixel data not supported ({_sop_class_name(ds)})")
        raise _reject(path, f"no pixel data ({_sop_class_name(ds)})")
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if not _ascii(ds, keyword):
            raise _reject(path, f"missing {keyword}")
    sop_class = _ascii(ds, "SOPClassUID")
    if sop_class in _NOT_GRADABLE:
        raise _reject(path, f"{_NOT_GRADABLE[sop_class]}, not an image to grade ({_sop_class_name(ds)})")
    frames, n = _ascii(ds, "NumberOfFrames").strip(), _int(ds, "NumberOfFrames")
    if frames and (n is None or n > 1):
        raise _reject(path, f"multi-frame ({n} frames) not supported" if n else f"invalid NumberOfFrames {frames!r}")
    samples = _us(ds, "SamplesPerPixel")
    photometric = _ascii(ds, "PhotometricInterpretation")
    if (samples or 1) != 1 or photometric.upper().startswith(_COLOUR):
        raise _reject(path, f"colour images not supported ({photometric or f'{samples} samples/pixel'})")
    if photometric not in _MONOCHROME:
        raise _reject(path, f"unsupported PhotometricInterpretation {photometric!r}" if photometric
                      else "missing PhotometricInterpretation")
    for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "SamplesPerPixel", "PixelRepresentation"):
        value = _us(ds, keyword)
        if value is None or (value == 0 and keyword != "PixelRepresentation"):
            raise _reject(path, f"missing or invalid {keyword}")
    tsuid = _transfer_syntax(path, ds, native)
    encapsulated = ds.PixelData if native is None and UID(tsuid).is_encapsulated else None
    problem = size_problem(_us(ds, "Rows") or 0, _us(ds, "Columns") or 0, _us(ds, "BitsAllocated") or 0, tsuid,
                           encapsulated if isinstance(encapsulated, bytes) else None)
    if problem:
        raise _reject(path, problem)
    return tsuid


def _native_fast(ds: Dataset, tsuid: str, buf: memoryview) -> np.ndarray | None:
    """Uncompressed little-endian greyscale: a view on the pixel bytes, exactly as pydicom decodes it.

    Returns None when the case is not the plain one (then pydicom decodes). Mirrors pydicom 3's native
    decoder: dtype from BitsAllocated/PixelRepresentation, extra trailing bytes ignored, and when
    BitsStored < BitsAllocated the unused high bits are shifted out (sign-extending signed data).
    """
    bits, rep, stored = (_us(ds, k) or 0 for k in ("BitsAllocated", "PixelRepresentation", "BitsStored"))
    if tsuid not in _NATIVE_LE or bits not in (8, 16, 32) or rep not in (0, 1) or not 1 <= stored <= bits:
        return None
    rows, cols = _us(ds, "Rows") or 0, _us(ds, "Columns") or 0
    need = rows * cols * (bits // 8)
    if len(buf) < need:
        raise ValueError(f"The number of bytes of pixel data is less than expected ({len(buf)} vs {need})")
    dtype = f"<{'i' if rep else 'u'}{bits // 8}"
    arr = np.frombuffer(buf, dtype=dtype, count=rows * cols).reshape(rows, cols)
    if stored < bits:
        arr = arr.copy()
        np.left_shift(arr, bits - stored, out=arr)
        np.right_shift(arr, bits - stored, out=arr)
    return arr


def _decode(path: str | os.PathLike[str], data: bytes, ds: Dataset, tsuid: str,
            native: memoryview | None) -> np.ndarray:
    """Decode the single frame; the returned array is read-only, native byte order, rows x columns."""
    try:
        arr = None if native is None else _native_fast(ds, tsuid, native)
        if arr is None and native is not None:  # an unusual layout: let pydicom read it all
            full = pydicom.dcmread(io.BytesIO(data), force=True)
            full.file_meta = ds.file_meta
            arr = full.pixel_array
        elif arr is None:
            arr = ds.pixel_array
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # BaseException: Rust decoders (pylibjpeg-rle) raise pyo3 PanicException
        msg = _one_line(exc, 10_000)
        if msg.startswith("Unable to decode as exceptions were raised by all available plugins:"):
            msg = msg.split(":", 1)[1].strip(" ;")
        msg = msg.split(" - the dataset may be", 1)[0]
        kind = "truncated pixel data" if "less than expected" in msg else "pixel data cannot be decoded"
        raise _reject(path, f"{kind}: {msg}") from None
    rows, cols = _us(ds, "Rows") or 0, _us(ds, "Columns") or 0
    if arr.shape != (rows, cols):
        raise _reject(path, f"decoded pixel array has shape {arr.shape}, expected ({rows}, {cols})")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    arr.flags.writeable = False
    return arr


def _numbers(ds: Dataset, keyword: str, n: int, warnings: list[str], unusable: str) -> tuple[float, ...] | None:
    """``n`` numbers as written (nan and inf kept for :func:`usable_geometry` to judge); None when absent.

    Text that is not ``n`` numbers is dropped with a warning naming the field."""
    text = _ascii(ds, keyword)
    if not text:
        return None
    try:
        values = tuple(float(p) for p in text.split("\\"))
    except ValueError:
        values = ()
    if len(values) != n:
        warnings.append(f"{unusable}: {keyword} {_one_line(text, 40)!r} is not {n} numbers")
        return None
    return values


def _geometry(ds: Dataset) -> tuple[ImageGeometry, tuple[str, ...]]:
    """The slice's geometry without values that cannot be right, and a warning for each one dropped."""
    warnings: list[str] = []
    no_frame = "no patient coordinates"
    raw = ImageGeometry(
        rows=_us(ds, "Rows") or 0,
        columns=_us(ds, "Columns") or 0,
        pixel_spacing=_numbers(ds, "PixelSpacing", 2, warnings, MM_UNAVAILABLE),  # type: ignore[arg-type]
        image_position=_numbers(ds, "ImagePositionPatient", 3, warnings, no_frame),  # type: ignore[arg-type]
        image_orientation=_numbers(ds, "ImageOrientationPatient", 6, warnings, no_frame),  # type: ignore[arg-type]
        slice_thickness=_first(ds, "SliceThickness"),
    )
    geometry, dropped = usable_geometry(raw)
    return geometry, (*warnings, *dropped)


def _instance(path: str | os.PathLike[str], ds: Dataset, digest: str, tsuid: str) -> DicomInstance:
    width = _first(ds, "WindowWidth")
    geometry, warnings = _geometry(ds)
    return DicomInstance(
        path=os.fspath(path),
        sha256=digest,
        sop_instance_uid=_ascii(ds, "SOPInstanceUID"),
        sop_class_uid=_ascii(ds, "SOPClassUID")
        or _ascii(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID"),
        study_instance_uid=_ascii(ds, "StudyInstanceUID"),
        series_instance_uid=_ascii(ds, "SeriesInstanceUID"),
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"),
        transfer_syntax_uid=tsuid,
        geometry=geometry,
        modality=_ascii(ds, "Modality"),
        study_date=_ascii(ds, "StudyDate"),
        study_description=_text(ds, "StudyDescription"),
        series_description=_text(ds, "SeriesDescription"),
        series_number=_int(ds, "SeriesNumber"),
        instance_number=_int(ds, "InstanceNumber"),
        frame_of_reference_uid=_ascii(ds, "FrameOfReferenceUID"),
        window_center=_first(ds, "WindowCenter"),
        window_width=width if width is not None and width > 0 else None,
        bits_stored=_us(ds, "BitsStored"),
        photometric=_ascii(ds, "PhotometricInterpretation"),
        number_of_frames=1,
        warnings=warnings,
    )


def read_instance(path: str | os.PathLike[str]) -> tuple[DicomInstance, np.ndarray]:
    """Read, validate and decode one file: its catalogue record and its stored pixel values.

    Returns ``(instance, pixels)``: ``pixels`` is the decoded 2-D array (rows x columns) of *stored*
    values (no rescale slope/intercept, no windowing, MONOCHROME1 not inverted), read-only, in native
    byte order. The file is read once; ``instance.sha256`` is the hash of its bytes. Raises
    :class:`DicomRejected` (one-line ``reason``) for any file the app cannot grade, never another
    exception for a bad file.
    """
    data = _read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    ds, native = _parse(path, data)
    try:
        tsuid = _validate(path, ds, native)
        pixels = _decode(path, data, ds, tsuid, native)
        return _instance(path, ds, digest, tsuid), pixels
    except DicomRejected:
        raise
    except Exception as exc:  # a malformed element deep in the file: still one clear line
        raise _reject(path, f"malformed DICOM: {type(exc).__name__}: {_one_line(exc)}") from None


@dataclass(frozen=True)
class LoadedSlice:
    pixels: np.ndarray  # float32, rows x columns, Modality LUT applied
    monochrome1: bool  # True: the lowest value is meant to look white


@dataclass(frozen=True)
class DecodedImage:
    """One file decoded for comparison: the hash of its bytes, its stored values and what a viewer shows."""

    sha256: str
    stored: np.ndarray
    loaded: LoadedSlice

    def same_pixels(self, other: DecodedImage) -> bool:
        """The same image whatever the encoding: equal stored values (shape included), equal values after
        the Modality LUT, same polarity. The transfer syntax and the other metadata do not matter."""
        return (self.stored.shape == other.stored.shape and np.array_equal(self.stored, other.stored)
                and self.loaded.monochrome1 == other.loaded.monochrome1
                and np.array_equal(self.loaded.pixels, other.loaded.pixels, equal_nan=True))


def _load(path: str | os.PathLike[str], data: bytes) -> tuple[np.ndarray, LoadedSlice]:
    ds, native = _parse(path, data)
    try:
        stored = _decode(path, data, ds, _validate(path, ds, native), native)
        pixels = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    except DicomRejected:
        raise
    except Exception as exc:
        raise _reject(path, f"cannot apply modality LUT: {type(exc).__name__}: {_one_line(exc)}") from None
    return stored, LoadedSlice(pixels, _ascii(ds, "PhotometricInterpretation") == "MONOCHROME1")


def load_slice(path: str | os.PathLike[str]) -> LoadedSlice:
    """Decoded pixels with the Modality LUT applied (rescale slope/intercept), and their polarity.

    No VOI/windowing and no MONOCHROME1 inversion: the viewer does those. Raises DicomRejected.
    """
    return _load(path, _read_bytes(path))[1]


def read_decoded(path: str | os.PathLike[str]) -> DecodedImage:
    """Hash and decode one file (read once) to compare it with another. Raises DicomRejected."""
    data = _read_bytes(path)
    stored, loaded = _load(path, data)
    return DecodedImage(hashlib.sha256(data).hexdigest(), stored, loaded)


def load_pixels(path: str | os.PathLike[str]) -> np.ndarray:
    """:func:`load_slice`'s pixels (stored polarity)."""
    return load_slice(path).pixels


def as_monochrome2(loaded: LoadedSlice) -> np.ndarray:
    """The pixels with high values bright: MONOCHROME1 mirrored within its own range, else unchanged."""
    p = loaded.pixels
    if not loaded.monochrome1 or p.size == 0:
        return p
    return np.asarray(float(p.max()) + float(p.min()) - p, dtype=np.float32)
