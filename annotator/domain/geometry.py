"""Pixel <-> patient coordinates of one DICOM image plane.

DICOM conventions (PS3.3 C.7.6.2): PixelSpacing is [row spacing (between rows, along a column),
column spacing (between columns, along a row)] in mm; ImageOrientationPatient holds the direction of a
row (increasing column index) then of a column (increasing row index), in patient LPS; pixel (column c,
row r) centre lies at IPP + c * colspacing * rowdir + r * rowspacing * coldir.
Missing spacing means distances in mm are unavailable: nothing assumes 1 mm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from annotator.domain.errors import InputError

Vec3 = tuple[float, float, float]

MM_UNAVAILABLE = "mm unavailable"


def _dot(a: Vec3, b: Vec3) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: Vec3, b: Vec3) -> Vec3:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _unit(a: Vec3) -> Vec3:
    n = math.sqrt(_dot(a, a))
    if n == 0:
        raise InputError("ImageOrientationPatient has a zero-length direction")
    return (a[0] / n, a[1] / n, a[2] / n)


@dataclass(frozen=True, slots=True)
class ImageGeometry:
    rows: int
    columns: int
    pixel_spacing: tuple[float, float] | None = None  # (row spacing, column spacing) mm
    image_position: Vec3 | None = None  # IPP, mm, LPS
    image_orientation: tuple[float, float, float, float, float, float] | None = None  # IOP
    slice_thickness: float | None = None

    @property
    def has_mm(self) -> bool:
        return self.pixel_spacing is not None and all(s > 0 for s in self.pixel_spacing)

    @property
    def has_patient_frame(self) -> bool:
        return self.has_mm and self.image_position is not None and self.image_orientation is not None

    def contains(self, column: float, row: float) -> bool:
        """Whether (column, row) lies on the image (pixel centres at integers, edges at -0.5)."""
        return -0.5 <= column <= self.columns - 0.5 and -0.5 <= row <= self.rows - 0.5

    def _require_mm(self) -> tuple[float, float]:
        if not self.has_mm or self.pixel_spacing is None:
            raise InputError(f"PixelSpacing missing: {MM_UNAVAILABLE}")
        return self.pixel_spacing

    def _axes(self) -> tuple[Vec3, Vec3, Vec3]:
        if self.image_orientation is None:
            raise InputError("ImageOrientationPatient missing: no patient coordinates")
        o = self.image_orientation
        rowdir = _unit((o[0], o[1], o[2]))
        coldir = _unit((o[3], o[4], o[5]))
        return rowdir, coldir, _unit(_cross(rowdir, coldir))

    @property
    def normal(self) -> Vec3:
        """Unit slice normal (row direction x column direction)."""
        return self._axes()[2]

    def pixel_to_patient(self, column: float, row: float) -> Vec3:
        rs, cs = self._require_mm()
        if self.image_position is None:
            raise InputError("ImagePositionPatient missing: no patient coordinates")
        rowdir, coldir, _ = self._axes()
        p = self.image_position
        return tuple(p[i] + column * cs * rowdir[i] + row * rs * coldir[i] for i in range(3))  # type: ignore[return-value]

    def patient_to_pixel(self, point: Vec3) -> tuple[float, float]:
        """Project a patient point onto the plane; returns (column, row)."""
        rs, cs = self._require_mm()
        if self.image_position is None:
            raise InputError("ImagePositionPatient missing: no patient coordinates")
        rowdir, coldir, _ = self._axes()
        d = (point[0] - self.image_position[0], point[1] - self.image_position[1], point[2] - self.image_position[2])
        return _dot(d, rowdir) / cs, _dot(d, coldir) / rs

    def distance_mm(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        """In-plane distance in mm between two (column, row) points on this image."""
        rs, cs = self._require_mm()
        return math.hypot((a[0] - b[0]) * cs, (a[1] - b[1]) * rs)

    def offset_mm(self, a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        """(dx, dy) in mm from a to b along columns and rows."""
        rs, cs = self._require_mm()
        return (b[0] - a[0]) * cs, (b[1] - a[1]) * rs

    def position_along_normal(self) -> float:
        """Where the slice lies along its own normal: the key that orders a series."""
        if self.image_position is None:
            raise InputError("ImagePositionPatient missing")
        return _dot(self.image_position, self.normal)
