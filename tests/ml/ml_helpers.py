"""Helpers of the ML tests: a tiny preset, labelling a phantom project from its truth, CLI environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from annotator.domain.entities import Role
from annotator.imaging.phantom_dicom import read_truth
from annotator.storage import catalog, labels, people
from annotator.storage.database import Database

# Overview 32 px at 8 mm/px, crop 32 px at 1.25 mm/px: small networks on tiny inputs.
TINY_OVERRIDES = {
    "localizer": {"field_mm": 256.0, "mm_per_px": 8.0, "width": 4, "batch_size": 4, "lr": 0.006},
    "classifier": {"crop_px": 32, "crop_mm_per_px": 1.25, "width": 8, "batch_size": 4, "lr": 0.006},
    "train": {"epochs": 12},
}
RATER = "expert1"


@dataclass
class Project:
    db: Database
    url: str
    folder: Path
    dicom: Path
    preset_file: Path

    @property
    def registry(self) -> Path:
        return self.folder / "project.models"


def tiny_preset_dict(base: str = "fast", **extra: dict[str, object]) -> dict[str, object]:
    from annotator.ml.config import load_preset

    overrides = {k: dict(v) for k, v in TINY_OVERRIDES.items()}
    for key, values in extra.items():
        overrides.setdefault(key, {}).update(values)  # type: ignore[arg-type]
    preset = load_preset(base).with_overrides(**overrides)  # type: ignore[arg-type]
    data = preset.to_dict()
    data["name"] = f"tiny-{base}"
    return data


def label_from_truth(db: Database, dicom: Path, rater: str = RATER) -> int:
    """The rater's labels = the phantom's truth (points and stages), added in one transaction."""
    r = people.add_rater(db, rater, Role.ANNOTATOR, simulated=True)
    by_sop = {im.sop_instance_uid: im.id for im in catalog.images(db)}
    items = [(by_sop[t.sop_instance_uid], r.id, t.x_px, t.y_px, t.stage) for t in read_truth(dicom)
             if t.sop_instance_uid in by_sop]
    return labels.add_versions_bulk(db, items, scale_code="lee", action="set")


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANNOTATOR_DB", "ANNOTATOR_MODELS_DIR")}
    env["PYTHONUNBUFFERED"] = "1"
    return env
