"""Hand-computed checks of ImageGeometry (DICOM PS3.3 C.7.6.2.1.1).

P(column c, row r) = IPP + c * column_spacing * row_direction + r * row_spacing * column_direction,
with PixelSpacing = (row spacing, column spacing) and IOP = (row direction, column direction).
"""

from __future__ import annotations

import math

import pytest

from annotator.domain.errors import InputError
from annotator.domain.geometry import ImageGeometry

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
C30, S30 = math.cos(math.radians(30)), math.sin(math.radians(30))  # 0.8660254, 0.5


def approx3(v: tuple[float, float, float]):  # type: ignore[no-untyped-def]
    return pytest.approx(v, abs=1e-9)


def test_axial_identity() -> None:
    g = ImageGeometry(rows=256, columns=256, pixel_spacing=(0.5, 0.5), image_position=(-64.0, -64.0, 12.0),
                      image_orientation=AXIAL)
    assert g.pixel_to_patient(0, 0) == approx3((-64.0, -64.0, 12.0))
    # column 10 -> +10 * 0.5 mm along x; row 20 -> +20 * 0.5 mm along y
    assert g.pixel_to_patient(10, 20) == approx3((-59.0, -54.0, 12.0))
    assert g.patient_to_pixel((-59.0, -54.0, 12.0)) == pytest.approx((10.0, 20.0))
    assert g.normal == approx3((0.0, 0.0, 1.0))
    assert g.position_along_normal() == pytest.approx(12.0)
    assert g.has_mm and g.has_patient_frame


def test_anisotropic_spacing_order_is_row_then_column() -> None:
    # PixelSpacing (row spacing 2.0, column spacing 0.5): neighbouring columns are 0.5 mm apart,
    # neighbouring rows 2.0 mm apart.
    g = ImageGeometry(rows=10, columns=10, pixel_spacing=(2.0, 0.5), image_position=(0.0, 0.0, 0.0),
                      image_orientation=AXIAL)
    assert g.pixel_to_patient(1, 0) == approx3((0.5, 0.0, 0.0))  # one column: column spacing, along x
    assert g.pixel_to_patient(0, 1) == approx3((0.0, 2.0, 0.0))  # one row: row spacing, along y
    assert g.distance_mm((0, 0), (1, 0)) == pytest.approx(0.5)
    assert g.distance_mm((0, 0), (0, 1)) == pytest.approx(2.0)
    # (3, 4) pixels away: hypot(3 * 0.5, 4 * 2.0) = hypot(1.5, 8) = 8.139410298...
    assert g.distance_mm((0, 0), (3, 4)) == pytest.approx(8.139410298049853)
    assert g.distance_mm((3, 4), (0, 0)) == pytest.approx(8.139410298049853)
    assert g.offset_mm((1, 1), (4, 5)) == pytest.approx((1.5, 8.0))
    assert g.patient_to_pixel((1.5, 8.0, 0.0)) == pytest.approx((3.0, 4.0))


def test_oblique_rotated_30_degrees_about_x() -> None:
    # Axial plane tilted 30 deg about the patient x (L) axis:
    #   row direction    = (1, 0, 0)
    #   column direction = (0, cos30, sin30) = (0, 0.8660254, 0.5)
    #   normal = row x column = (0*0.5 - 0*0.866, 0*0 - 1*0.5, 1*0.866 - 0*0) = (0, -0.5, 0.8660254)
    # IPP (10, 20, 30), PixelSpacing (row 2.0, column 0.5); pixel (c=4, r=3):
    #   x = 10 + 4*0.5*1                  = 12
    #   y = 20 + 3*2.0*0.8660254          = 25.1961524
    #   z = 30 + 3*2.0*0.5                = 33
    g = ImageGeometry(rows=64, columns=64, pixel_spacing=(2.0, 0.5), image_position=(10.0, 20.0, 30.0),
                      image_orientation=(1.0, 0.0, 0.0, 0.0, C30, S30))
    assert g.pixel_to_patient(4, 3) == approx3((12.0, 20.0 + 6.0 * C30, 33.0))
    assert g.pixel_to_patient(4, 3)[1] == pytest.approx(25.196152422706632)
    assert g.normal == approx3((0.0, -0.5, C30))
    assert g.patient_to_pixel((12.0, 20.0 + 6.0 * C30, 33.0)) == pytest.approx((4.0, 3.0))
    # A point 7 mm off the plane along the normal projects onto the same pixel.
    off = (12.0, 20.0 + 6.0 * C30 - 7 * 0.5, 33.0 + 7 * C30)
    assert g.patient_to_pixel(off) == pytest.approx((4.0, 3.0))
    # position along normal: IPP . n = 20*(-0.5) + 30*0.8660254 = -10 + 25.980762 = 15.980762
    assert g.position_along_normal() == pytest.approx(-10.0 + 30.0 * C30)


def test_oblique_rotated_30_degrees_about_z() -> None:
    # row direction (cos30, sin30, 0), column direction (-sin30, cos30, 0); spacing (1.0, 1.0), IPP 0.
    # pixel (c=2, r=0) -> 2 * (0.8660254, 0.5, 0) = (1.7320508, 1.0, 0)
    # pixel (c=0, r=2) -> 2 * (-0.5, 0.8660254, 0) = (-1.0, 1.7320508, 0)
    g = ImageGeometry(rows=8, columns=8, pixel_spacing=(1.0, 1.0), image_position=(0.0, 0.0, 0.0),
                      image_orientation=(C30, S30, 0.0, -S30, C30, 0.0))
    assert g.pixel_to_patient(2, 0) == approx3((math.sqrt(3), 1.0, 0.0))
    assert g.pixel_to_patient(0, 2) == approx3((-1.0, math.sqrt(3), 0.0))
    assert g.normal == approx3((0.0, 0.0, 1.0))


def test_sagittal_orientation() -> None:
    # Sagittal: rows run anterior->posterior (+y), columns run head->feet (-z); normal = (0,1,0)x(0,0,-1)
    # = (1*(-1) - 0*0, 0*0 - 0*(-1), 0*0 - 1*0) = (-1, 0, 0).
    g = ImageGeometry(rows=100, columns=100, pixel_spacing=(0.8, 0.6), image_position=(5.0, -50.0, 80.0),
                      image_orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    assert g.pixel_to_patient(10, 20) == approx3((5.0, -50.0 + 10 * 0.6, 80.0 - 20 * 0.8))
    assert g.normal == approx3((-1.0, 0.0, 0.0))
    assert g.position_along_normal() == pytest.approx(-5.0)


@pytest.mark.parametrize("iop", [AXIAL, (1.0, 0.0, 0.0, 0.0, C30, S30), (C30, S30, 0.0, -S30, C30, 0.0),
                                 (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)])
@pytest.mark.parametrize("point", [(0.0, 0.0), (3.0, 4.0), (17.25, 0.5), (-2.0, 63.75)])
def test_round_trip(iop: tuple[float, float, float, float, float, float], point: tuple[float, float]) -> None:
    g = ImageGeometry(rows=64, columns=64, pixel_spacing=(0.7, 1.3), image_position=(-12.5, 3.0, 40.0),
                      image_orientation=iop)
    assert g.patient_to_pixel(g.pixel_to_patient(*point)) == pytest.approx(point, abs=1e-9)


def test_unnormalised_orientation_is_normalised() -> None:
    g = ImageGeometry(rows=4, columns=4, pixel_spacing=(1.0, 2.0), image_position=(0.0, 0.0, 0.0),
                      image_orientation=(2.0, 0.0, 0.0, 0.0, 3.0, 0.0))
    assert g.pixel_to_patient(1, 1) == approx3((2.0, 1.0, 0.0))


def test_distance_uses_in_plane_mm_only() -> None:
    # distance_mm needs spacing but not position/orientation
    g = ImageGeometry(rows=4, columns=4, pixel_spacing=(0.3125, 0.3125))
    assert g.has_mm and not g.has_patient_frame
    assert g.distance_mm((0, 0), (3, 4)) == pytest.approx(5 * 0.3125)
    with pytest.raises(InputError, match="ImagePositionPatient"):
        g.pixel_to_patient(0, 0)


@pytest.mark.parametrize("spacing", [None, (0.0, 0.5), (0.5, -1.0)])
def test_missing_spacing_says_mm_unavailable(spacing: tuple[float, float] | None) -> None:
    g = ImageGeometry(rows=4, columns=4, pixel_spacing=spacing, image_position=(0.0, 0.0, 0.0),
                      image_orientation=AXIAL)
    assert not g.has_mm and not g.has_patient_frame
    for call in (lambda: g.distance_mm((0, 0), (1, 1)), lambda: g.offset_mm((0, 0), (1, 1)),
                 lambda: g.pixel_to_patient(1, 1), lambda: g.patient_to_pixel((0.0, 0.0, 0.0))):
        with pytest.raises(InputError, match="mm unavailable"):
            call()
    # the slice's own position does not need in-plane spacing
    assert g.position_along_normal() == pytest.approx(0.0)


def test_missing_orientation_or_zero_vector() -> None:
    g = ImageGeometry(rows=4, columns=4, pixel_spacing=(1.0, 1.0), image_position=(0.0, 0.0, 0.0))
    with pytest.raises(InputError, match="ImageOrientationPatient"):
        g.pixel_to_patient(0, 0)
    z = ImageGeometry(rows=4, columns=4, pixel_spacing=(1.0, 1.0), image_position=(0.0, 0.0, 0.0),
                      image_orientation=(0.0, 0.0, 0.0, 0.0, 1.0, 0.0))
    with pytest.raises(InputError, match="zero-length"):
        z.pixel_to_patient(0, 0)
