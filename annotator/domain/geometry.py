"""Pixel <-> patient coordinates of one DICOM image plane.

DICOM conventions (PS3.3 C.7.6.2): PixelSpacing is [row spacing (between rows, along a column),
column spacing (between columns, along a row)] in mm; ImageOrientationPatient holds the direction of a
row (increasing column index) then of a column (increasing row index), in patient LPS; pixel (column c,
row r) centre lies at IPP + c * colspacing * rowdir + r * rowspacing * coldir.
Missing spacing means distances in mm are unavailable: nothing assumes 1 mm.

Values read from a file are checked by :func:`usable_geometry` before they are stored: spacing that
cannot be right (non-finite, zero, negative, outside :data:`SPACING_RANGE_MM`), an orientation whose two
directions are not unit length and perpendicular, or a position that is not finite or lies absurdly far
away are dropped with a warning, so the slice is "mm unavailable" (or has no patient frame) instead of
carrying numbers that would silently mislead every distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from annotator.domain.errors import InputError

Vec3 = tuple[float, float, float]

MM_UNAVAILABLE = "mm unavailable"
# Pixel spacing a scanner can produce: 1 micrometre to 50 mm per pixel (axial MRI: about 0.2-2 mm).
SPACING_RANGE_MM = (0.001, 50.0)
ORTHONORMAL_TOLERANCE = 0.01  # directions written with two decimals still pass; a wrong one does not
MAX_POSITION_MM = 1e5  # 100 m from the origin: no patient lies there
MAX_THICKNESS_MM = 1000.0


def _finite(values: tuple[float, ...]) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def spacing_problem(spacing: tuple[float, ...] | None) -> str | None:
    """Why ``spacing`` (row, column mm) cannot be used; None when it can."""
    if spacing is None:
        return "missing"
    if len(spacing) != 2 or not _finite(spacing):
        return f"{_show(spacing)} is not two finite numbers"
    lo, hi = SPACING_RANGE_MM
    if not all(lo <= s <= hi for s in spacing):
        return f"{_show(spacing)} is outside {lo:g}-{hi:g} mm"
    return None


def orientation_problem(iop: tuple[float, ...] | None) -> str | None:
    """Why ImageOrientationPatient cannot be used (not two perpendicular unit vectors); None when it can."""
    if iop is None:
        return "missing"
    if len(iop) != 6 or not _finite(iop):
        return f"{_show(iop)} is not six finite numbers"
    row, col = (iop[0], iop[1], iop[2]), (iop[3], iop[4], iop[5])
    tol = ORTHONORMAL_TOLERANCE
    if abs(math.sqrt(_dot(row, row)) - 1) > tol or abs(math.sqrt(_dot(col, col)) - 1) > tol:
        return f"{_show(iop)} does not hold two unit vectors"
    if abs(_dot(row, col)) > tol:
        return f"{_show(iop)} holds directions that are not perpendicular"
    return None


def position_problem(ipp: tuple[float, ...] | None) -> str | None:
    """Why ImagePositionPatient cannot be used; None when it can."""
    if ipp is None:
        return "missing"
    if len(ipp) != 3 or not _finite(ipp):
        return f"{_show(ipp)} is not three finite numbers"
    if any(abs(v) > MAX_POSITION_MM for v in ipp):
        return f"{_show(ipp)} lies more than {MAX_POSITION_MM:g} mm from the origin"
    return None


def _show(values: tuple[float, ...]) -> str:
    return "\\".join(f"{v:g}" if isinstance(v, int | float) else repr(v) for v in values)


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
        return spacing_problem(self.pixel_spacing) is None

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


def usable_geometry(g: ImageGeometry) -> tuple[ImageGeometry, tuple[str, ...]]:
    """``g`` without the values that cannot be right, and one warning for each value dropped.

    Missing values stay missing without a warning; present but impossible ones are removed and named:
    spacing ("mm unavailable"), orientation and position (no patient coordinates). An impossible slice
    thickness (informative only: no distance uses it) is dropped silently.
    """
    warnings: list[str] = []
    spacing, ipp, iop, thickness = g.pixel_spacing, g.image_position, g.image_orientation, g.slice_thickness
    if spacing is not None and (why := spacing_problem(spacing)):
        warnings.append(f"{MM_UNAVAILABLE}: PixelSpacing {why}")
        spacing = None
    if iop is not None and (why := orientation_problem(iop)):
        warnings.append(f"no patient coordinates: ImageOrientationPatient {why}")
        iop = None
    if ipp is not None and (why := position_problem(ipp)):
        warnings.append(f"no patient coordinates: ImagePositionPatient {why}")
        ipp = None
    if thickness is not None and not (math.isfinite(thickness) and 0 < thickness <= MAX_THICKNESS_MM):
        thickness = None
    if not warnings and thickness == g.slice_thickness:
        return g, ()
    return ImageGeometry(rows=g.rows, columns=g.columns, pixel_spacing=spacing, image_position=ipp,
                         image_orientation=iop, slice_thickness=thickness), tuple(warnings)
