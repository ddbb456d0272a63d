"""The Image Library (TID 1600) of an SR report, encoded, as highdicom builds it but fast.

highdicom's ``ImageLibrary`` takes milliseconds per image (it looks its IOD tables up for every item),
which at one report per study and reader is most of an export. Here highdicom builds the entry of the
first image of each layout (SOP class, which descriptors the header has); every other image's entry
reuses that layout, with each descriptor's item built by highdicom once per distinct value (slices share
their matrix, spacing and orientation) and the image's own references filled in. A layout with a
descriptor this module does not know is built by highdicom image by image. A test compares whole
reports with highdicom's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.valuerep import DS

from annotator.services.formats import sr_bytes

_IMAGE_LIBRARY_GROUP = ("126200", "DCM")

# The descriptors of TID 1602/1604 (cross-sectional images): concept -> the header value highdicom uses.
_NUM: dict[str, Callable[[Dataset], Any]] = {
    "110910": lambda h: h.Rows, "110911": lambda h: h.Columns,
    "111026": lambda h: h.PixelSpacing[1], "111066": lambda h: h.PixelSpacing[0],
    "112225": lambda h: h.SliceThickness, "112226": lambda h: h.SpacingBetweenSlices,
    "110901": lambda h: h.ImagePositionPatient[0], "110902": lambda h: h.ImagePositionPatient[1],
    "110903": lambda h: h.ImagePositionPatient[2],
    "110904": lambda h: h.ImageOrientationPatient[0], "110905": lambda h: h.ImageOrientationPatient[1],
    "110906": lambda h: h.ImageOrientationPatient[2], "110907": lambda h: h.ImageOrientationPatient[3],
    "110908": lambda h: h.ImageOrientationPatient[4], "110909": lambda h: h.ImageOrientationPatient[5],
}
_MODALITY, _FRAME = "121139", "112227"
_MEASURED, _UNITS, _NUMERIC, _FLOAT = 0x0040A300, 0x004008EA, 0x0040A30A, 0x0040A161
_OPTIONAL = ("FrameOfReferenceUID", "PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient",
             "SliceThickness", "SpacingBetweenSlices", "ImagerPixelSpacing", "PatientOrientation")


def _layout(h: Dataset) -> tuple[str, ...]:
    return (str(h.SOPClassUID), *(kw for kw in _OPTIONAL if kw in h))


class LibraryBuilder:
    """Encoded image library groups for a list of slice headers; caches across calls."""

    def __init__(self) -> None:
        self._layouts: dict[tuple[str, ...], tuple[Dataset, list[Dataset]] | None] = {}
        self._items: dict[tuple[str, str, str], bytes] = {}
        self._group_head: bytes | None = None
        self._num_parts: dict[str, tuple[sr_bytes.Spliced, dict[int, bytes]]] = {}

    def groups(self, headers: Sequence[Dataset]) -> list[bytes]:
        """The library's Image Library Group items: one per (modality, frame of reference), in the
        order of their first image, as highdicom groups them."""
        by_group: dict[tuple[str, str], list[bytes]] = {}
        for h in headers:
            entry, modality = self._entry(h)
            by_group.setdefault((modality, str(h.get("FrameOfReferenceUID", ""))), []).append(entry)
        assert self._group_head is not None
        return [sr_bytes.container(self._group_head, entries) for entries in by_group.values()]

    def _entry(self, h: Dataset) -> tuple[bytes, str]:
        """One image's IMAGE item (with its descriptors) and its modality code value."""
        key = _layout(h)
        if key not in self._layouts:
            self._layouts[key] = self._template(h)
        layout = self._layouts[key]
        if layout is None:  # a descriptor we do not know: highdicom, image by image
            group = plain(hd.sr.ImageLibrary([h])[0].ContentSequence[0])
            image = group.ContentSequence[0]
            return sr_bytes.item(image), str(image.ContentSequence[0].ConceptCodeSequence[0].CodeValue)
        image_head, descriptors = layout
        children = []
        modality = ""
        for d in descriptors:
            concept = str(d.ConceptNameCodeSequence[0].CodeValue)
            if concept == _MODALITY:
                modality = str(d.ConceptCodeSequence[0].CodeValue)
                children.append(self._cached(d, modality))
            elif concept == _FRAME:
                d.UID = h.FrameOfReferenceUID
                children.append(sr_bytes.item(d))
            else:
                children.append(self._num(d, _NUM[concept](h)))
        ref = image_head.ReferencedSOPSequence[0]
        ref.ReferencedSOPClassUID = h.SOPClassUID
        ref.ReferencedSOPInstanceUID = h.SOPInstanceUID
        return sr_bytes.container(sr_bytes.elements(image_head), children), modality

    def _template(self, h: Dataset) -> tuple[Dataset, list[Dataset]] | None:
        [group] = [plain(g) for g in hd.sr.ImageLibrary([h])[0].ContentSequence]
        if self._group_head is None:
            self._group_head = sr_bytes.head(group)
        image = group.ContentSequence[0]
        descriptors = list(image.ContentSequence)
        known = {_MODALITY, _FRAME, *_NUM}
        if any(str(d.ConceptNameCodeSequence[0].CodeValue) not in known for d in descriptors):
            return None
        del image.ContentSequence
        return image, descriptors

    def _cached(self, item: Dataset, value: str) -> bytes:
        key = (str(item.ConceptNameCodeSequence[0].CodeValue), value, "")
        if key not in self._items:
            self._items[key] = sr_bytes.item(item)
        return self._items[key]

    def _num(self, template: Dataset, value: Any) -> bytes:
        """A NUM descriptor for this value, encoded as highdicom's NumContentItem encodes it (a DS with
        auto format, and for a float the FD as well); built once per distinct value."""
        concept = str(template.ConceptNameCodeSequence[0].CodeValue)
        key = (concept, type(value).__name__, str(value))
        if key not in self._items:
            if concept not in self._num_parts:
                measured = template.MeasuredValueSequence[0]
                units = {_UNITS: sr_bytes.elements(Dataset({Tag(_UNITS): measured[_UNITS]}))}
                self._num_parts[concept] = (sr_bytes.Spliced(template), units)
            spliced, units = self._num_parts[concept]
            numeric = Dataset()
            numeric.NumericValue = DS(value, auto_format=True)
            parts = {**units, _NUMERIC: sr_bytes.elements(numeric)}
            if isinstance(value, float):
                parts[_FLOAT] = sr_bytes.fd(_FLOAT, value)
            self._items[key] = spliced({_MEASURED: sr_bytes.sq(_MEASURED, [sr_bytes.wrap(sr_bytes.joined(parts))])})
        return self._items[key]


def plain(ds: Dataset) -> Dataset:
    """A plain pydicom copy of a (highdicom) dataset: encoding plain datasets is much faster."""
    out = Dataset()
    for elem in ds:
        if elem.VR == "SQ":
            out.add_new(elem.tag, "SQ", [plain(i) for i in elem.value])
        else:
            out.add_new(elem.tag, elem.VR, elem.value)
    return out
