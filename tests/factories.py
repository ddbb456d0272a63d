"""Small builders of domain records for tests that do not need real DICOM files."""

from __future__ import annotations

import hashlib

from annotator.domain.entities import DicomInstance
from annotator.domain.geometry import ImageGeometry


def instance(i: int, *, series: int = 0, patient: int = 0, z: float | None = None, path: str | None = None,
             spacing: tuple[float, float] | None = (0.5, 0.5), rows: int = 64, cols: int = 64) -> DicomInstance:
    """A plausible axial slice record; ``z`` sets the position along the normal (default: i * 4 mm)."""
    zpos = float(i * 4.0) if z is None else z
    return DicomInstance(
        path=path or f"/nonexistent/p{patient}/s{series}/img{i}.dcm",
        sha256=hashlib.sha256(f"{patient}-{series}-{i}".encode()).hexdigest(),
        sop_instance_uid=f"1.2.826.0.1.3680043.8.498.{patient}.{series}.{i}",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
        study_instance_uid=f"1.2.826.0.1.3680043.8.498.{patient}.9",
        series_instance_uid=f"1.2.826.0.1.3680043.8.498.{patient}.{series}.0",
        patient_id=f"P{patient:04d}",
        patient_name=f"Phantom^{patient}",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        geometry=ImageGeometry(rows=rows, columns=cols, pixel_spacing=spacing,
                               image_position=(-16.0, -16.0, zpos), image_orientation=(1, 0, 0, 0, 1, 0),
                               slice_thickness=4.0),
        modality="MR", series_description="AX T2", series_number=series + 1, instance_number=i + 1,
        window_center=1000.0, window_width=2000.0,
    )
