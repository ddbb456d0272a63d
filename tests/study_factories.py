"""A mixed archive of catalogued slices (no files) for reader-study tests: per patient a sagittal series,
axial stacks at L3-L4, L4-L5 and L5-S1, and a sagittal series whose description names L4-L5."""

from __future__ import annotations

import dataclasses

from annotator.domain.entities import DicomInstance
from annotator.domain.studies import Orientation, SelectionRule, VertebralLevel
from annotator.services import levels as level_service
from annotator.storage import catalog
from tests.factories import instance

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
SERIES = [("SAG T2", SAGITTAL, 5), ("AX T2 L3-L4", AXIAL, 3), ("AX T2 L4-5", AXIAL, 4), ("ax t2 l5/s1", AXIAL, 3),
          ("SAG T2 L4-L5 (mislabelled)", SAGITTAL, 2)]
RULE = SelectionRule(series_description="T2", orientation=Orientation.AXIAL, level=VertebralLevel.L4_L5,
                     modality="MR")


def make_slice(patient: int, series: int, i: int, description: str, iop: tuple[float, ...]) -> DicomInstance:
    base = instance(i, series=series, patient=patient)
    g = dataclasses.replace(base.geometry, image_orientation=iop)  # type: ignore[arg-type]
    return dataclasses.replace(base, series_description=description, geometry=g)


def archive(db, patients: range) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """A mixed archive of several patients; SOP UIDs by series description."""
    insts = [make_slice(p, s, i, d, iop) for p in patients for s, (d, iop, n) in enumerate(SERIES) for i in range(n)]
    catalog.import_instances(db, insts)
    level_service.apply_import_rule(db, [x.sop_instance_uid for x in insts])  # what import_paths does
    out: dict[str, list[str]] = {}
    for x in insts:
        out.setdefault(x.series_description, []).append(x.sop_instance_uid)
    return out


