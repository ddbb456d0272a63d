"""A synthetic lumbar MRI exam per patient: localizer, sagittal T2 and axial T2 stacks at three levels.

One patient coordinate frame (DICOM LPS, mm) holds every image: ``x`` towards the patient's left, ``y``
posterior, ``z`` superior. The spine is a lordotic column whose canal centre line runs through
``(canal_x, canal_y(z), z)``; each disc is horizontal, so an axial stack (orientation [1,0,0,0,1,0]) at a
disc lies at that disc's height in the sagittal images (orientation [0,1,0,0,0,-1]) and its canal lies on
the sagittal canal. The L4-L5 level is ``phantom.draw_patient``'s patient with the study's prevalence;
L3-L4 and L5-S1 are the same patient (body, canal size, field of view) with their own severity drawn from
milder prevalences, their own disc height and rootlets. The axial rendering is ``phantom.render_slice``,
unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from annotator.domain.geometry import ImageGeometry
from annotator.imaging.phantom import (
    DEFAULT_PREVALENCE,
    DEFAULT_SCANNER,
    PatientSpec,
    Scanner,
    SliceTruth,
    draw_patient,
    draw_severity,
    render_slice,
)
from annotator.imaging.phantom_anatomy import NUCLEUS, lerp
from annotator.imaging.phantom_sagittal import SpineLayout, render_coronal, render_sagittal

AXIAL_LEVELS: tuple[str, ...] = ("L3-L4", "L4-L5", "L5-S1")
STUDY_LEVEL = "L4-L5"
# stenosis is most frequent at L4-L5 (the study's prevalence), then L3-L4, then L5-S1
LEVEL_PREVALENCE: dict[str, tuple[float, float, float, float]] = {
    "L3-L4": (0.84, 0.11, 0.04, 0.01),
    "L5-S1": (0.90, 0.08, 0.015, 0.005),
}
EXAM_SLICES_PER_LEVEL = 3
AXIAL_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL_ORIENTATION = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
CORONAL_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
LOCALIZER = "LOCALIZER"
SAGITTAL = "SAG T2"
SAGITTAL_MATRIX, SAGITTAL_FOV_MM, SAGITTAL_SLICES, SAGITTAL_THICKNESS_MM = 192, 280.0, 5, 4.0
LOCALIZER_MATRIX, LOCALIZER_FOV_MM, LOCALIZER_THICKNESS_MM = 96, 360.0, 8.0
_AXIAL_Y0 = 20.0  # y of the axial image centre at L4-L5 (as the single-level phantom writes it)


def axial_description(level: str) -> str:
    return f"AX T2 {level}"


@dataclass(frozen=True, slots=True)
class ExamSpec:
    """One patient's exam: an axial patient spec per level (``AXIAL_LEVELS`` order) and the spine."""

    levels: tuple[PatientSpec, ...]
    spine: SpineLayout

    @property
    def study(self) -> PatientSpec:
        """The L4-L5 spec: the one patient the single-level phantom would have drawn."""
        return self.levels[AXIAL_LEVELS.index(STUDY_LEVEL)]

    @property
    def by_level(self) -> dict[str, PatientSpec]:
        return dict(zip(AXIAL_LEVELS, self.levels, strict=True))


@dataclass(frozen=True, slots=True)
class ExamImage:
    """One image of the exam, ready to be written as DICOM: pixels, plane, and truth if graded."""

    series_description: str
    series_number: int
    instance_number: int  # 1-based within its series
    pixels: np.ndarray  # uint16, rows x columns
    geometry: ImageGeometry  # rows, columns, spacing, position and orientation in the exam's frame
    truth: SliceTruth | None = None  # only axial slices of a level carry truth
    level: str | None = None

    @property
    def slice_location(self) -> float:
        return self.geometry.position_along_normal()


def draw_exam(rng: np.random.Generator, prevalence: tuple[float, ...] = DEFAULT_PREVALENCE, index: int = 0,
              n_slices: int | None = None, level_seed: tuple[int, ...] = (0,),
              scanner: Scanner = DEFAULT_SCANNER) -> ExamSpec:
    """The exam of patient ``index``: L4-L5 from ``rng`` as ``draw_patient`` would draw it (with the study's
    ``prevalence``); the other levels and the spine from ``default_rng([*level_seed, ...])``."""
    n = EXAM_SLICES_PER_LEVEL if n_slices is None else int(n_slices)
    base = draw_patient(rng, prevalence, index=index, n_slices=n, scanner=scanner)
    lrng = np.random.default_rng([*level_seed, 7])
    spine = SpineLayout.draw(lrng, base)
    levels = []
    for name in AXIAL_LEVELS:
        if name == STUDY_LEVEL:
            levels.append(base)
            continue
        stage, sev = draw_severity(lrng, LEVEL_PREVALENCE[name])
        levels.append(replace(
            base, seed=int(lrng.integers(0, 2**62)), stage=stage, severity=sev,
            disc_height_mm=spine.disc_height(name), disc_tilt_deg=float(lrng.uniform(-6, 6)),
            nucleus_signal=float(np.clip(lerp(NUCLEUS, 0.3, sev) + lrng.normal(0, 0.06), 0.22, 0.7)),
            n_rootlets=int(lrng.integers(8 if name == "L5-S1" else 10, 19)),
            table_z_mm=round(spine.disc_z(name), 3)))
    return ExamSpec(tuple(levels), spine)


def axial_position(spec: PatientSpec, spine: SpineLayout | None, matrix: int, offset_mm: float
                   ) -> tuple[float, float, float]:
    """ImagePositionPatient of an axial slice ``offset_mm`` above ``spec``'s disc centre.

    The image centre lies at x = 0, y = 20 mm (+ the lordotic shift of the canal at the disc, the same
    for the whole stack): the anatomy's canal centre, ``spec.canal_offset_mm`` from the image centre, then
    lies on the spine's canal centre line at the disc."""
    ps = spec.fov_mm / matrix
    half = (matrix - 1) / 2.0 * ps
    z = spec.table_z_mm + offset_mm
    shift = 0.0 if spine is None else float(spine.canal_y(spec.table_z_mm)) - spine.canal_y45
    return (-half, -half + _AXIAL_Y0 + shift, z)


def axial_images(spec: PatientSpec, matrix: int, description: str, series_number: int,
                 level: str | None, spine: SpineLayout | None = None) -> Iterator[ExamImage]:
    """The contiguous axial stack of ``spec`` (cranial first) with its truth."""
    ps = spec.fov_mm / matrix
    for k, offset in enumerate(spec.slice_offsets_mm):
        img, truth = render_slice(spec, offset, matrix=matrix)
        geo = ImageGeometry(matrix, matrix, (ps, ps), axial_position(spec, spine, matrix, offset),
                            AXIAL_ORIENTATION, spec.slice_thickness_mm)
        yield ExamImage(description, series_number, k + 1, img, geo, truth, level)


def _plane(matrix: int, fov: float, centre: tuple[float, float, float],
           orientation: tuple[float, float, float, float, float, float], thickness: float) -> ImageGeometry:
    """A square plane of ``matrix`` pixels over ``fov`` mm centred on ``centre``."""
    ps = fov / matrix
    half = (matrix - 1) / 2.0 * ps
    ipp = tuple(centre[i] - half * orientation[i] - half * orientation[3 + i] for i in range(3))
    return ImageGeometry(matrix, matrix, (ps, ps), ipp, orientation, thickness)  # type: ignore[arg-type]


def sagittal_planes(ex: ExamSpec) -> list[ImageGeometry]:
    """The sagittal slices, patient right to left, the middle one through the canal centre."""
    sp = ex.spine
    y_c, z_c = sp.sagittal_centre(SAGITTAL_FOV_MM)
    k0 = (SAGITTAL_SLICES - 1) / 2.0
    return [_plane(SAGITTAL_MATRIX, SAGITTAL_FOV_MM,
                   (sp.canal_x + (k - k0) * SAGITTAL_THICKNESS_MM, y_c, z_c),
                   SAGITTAL_ORIENTATION, SAGITTAL_THICKNESS_MM) for k in range(SAGITTAL_SLICES)]


def exam_images(ex: ExamSpec, matrix: int) -> Iterator[ExamImage]:
    """Every image of the exam in acquisition order: localizer (series 1: axial, sagittal, coronal),
    sagittal T2 (series 2), then the axial stacks (series 3, 4, 5 = ``AXIAL_LEVELS``)."""
    spec, sp = ex.study, ex.spine
    # localizer: an axial through the middle of L4, a mid-sagittal and a coronal through the bodies
    z_l4 = sp.body_centre_z("L4")
    loc_ps = spec.fov_mm / LOCALIZER_MATRIX
    img, _ = render_slice(spec, z_l4 - spec.table_z_mm, matrix=LOCALIZER_MATRIX,
                          rng=np.random.default_rng([spec.seed, 21]))
    geo = ImageGeometry(LOCALIZER_MATRIX, LOCALIZER_MATRIX, (loc_ps, loc_ps),
                        axial_position(spec, sp, LOCALIZER_MATRIX, z_l4 - spec.table_z_mm), AXIAL_ORIENTATION,
                        LOCALIZER_THICKNESS_MM)
    yield ExamImage(LOCALIZER, 1, 1, img, geo)
    y_c, z_c = sp.sagittal_centre(LOCALIZER_FOV_MM)
    geo = _plane(LOCALIZER_MATRIX, LOCALIZER_FOV_MM, (sp.canal_x, y_c, z_c), SAGITTAL_ORIENTATION,
                 LOCALIZER_THICKNESS_MM)
    pixels = render_sagittal(ex.by_level, sp, geo, np.random.default_rng([spec.seed, 22])).pixels
    yield ExamImage(LOCALIZER, 1, 2, pixels, geo)
    geo = _plane(LOCALIZER_MATRIX, LOCALIZER_FOV_MM, (sp.canal_x, sp.body_y(), z_c), CORONAL_ORIENTATION,
                 LOCALIZER_THICKNESS_MM)
    yield ExamImage(LOCALIZER, 1, 3, render_coronal(spec, sp, geo, np.random.default_rng([spec.seed, 23])), geo)
    for k, geo in enumerate(sagittal_planes(ex)):
        pixels = render_sagittal(ex.by_level, sp, geo, np.random.default_rng([spec.seed, 24, k])).pixels
        yield ExamImage(SAGITTAL, 2, k + 1, pixels, geo)
    for i, (name, lspec) in enumerate(zip(AXIAL_LEVELS, ex.levels, strict=True)):
        yield from axial_images(lspec, matrix, axial_description(name), 3 + i, name, sp)
