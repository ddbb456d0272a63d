"""Use case: a rater labels slices (canal centre and/or grade), one committed version per action.

Blinding lives here, not in widgets: an annotator's queries return only that rater's labels unless
the project allows otherwise; reviewers and admins see every rater.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from annotator.domain.entities import Label, ProjectSettings, Rater
from annotator.domain.errors import InputError
from annotator.domain.scales import GradingScale, load_scale
from annotator.storage import catalog, labels, people
from annotator.storage.database import Database


@dataclass
class LabelService:
    db: Database
    rater: Rater

    @property
    def settings(self) -> ProjectSettings:
        return people.get_settings(self.db)

    @property
    def scale(self) -> GradingScale:
        return load_scale(self.settings.scale_code)

    def _current(self, image_id: int) -> Label | None:
        found = labels.current(self.db, rater_ids=[self.rater.id], image_ids=[image_id], include_empty=True)
        return found[0] if found else None

    def _validate_point(self, image_id: int, x: float, y: float) -> None:
        g = catalog.image_by_id(self.db, image_id).geometry
        if not (-0.5 <= x <= g.columns - 0.5 and -0.5 <= y <= g.rows - 0.5):
            raise InputError(f"point ({x:.1f}, {y:.1f}) lies outside the {g.columns}x{g.rows} image")

    def _commit(self, image_id: int, x: float | None, y: float | None, grade: int | None, action: str,
                prev: Label | None) -> Label:
        return labels.add_version(self.db, image_id=image_id, rater_id=self.rater.id, x_px=x, y_px=y,
                                  grade=grade, scale_code=self.scale.code, action=action,
                                  expected_version=prev.version if prev else 0)

    def set_point(self, image_id: int, x: float, y: float) -> Label:
        self._validate_point(image_id, x, y)
        prev = self._current(image_id)
        return self._commit(image_id, x, y, prev.grade if prev else None, "point", prev)

    def set_grade(self, image_id: int, grade: int) -> Label:
        self.scale.grade(grade)  # raises on an out-of-scale grade
        prev = self._current(image_id)
        return self._commit(image_id, prev.x_px if prev else None, prev.y_px if prev else None, grade,
                            "grade", prev)

    def set_label(self, image_id: int, x: float | None, y: float | None, grade: int | None,
                  action: str = "set") -> Label:
        if (x is None) != (y is None):
            raise InputError("a point needs both x_px and y_px")
        if x is not None and y is not None:
            self._validate_point(image_id, x, y)
        if grade is not None:
            self.scale.grade(grade)
        prev = self._current(image_id)
        return self._commit(image_id, x, y, grade, action, prev)

    def clear(self, image_id: int) -> Label:
        prev = self._current(image_id)
        return self._commit(image_id, None, None, None, "clear", prev)

    def my_labels(self, image_ids: Collection[int] | None = None) -> list[Label]:
        return labels.current(self.db, rater_ids=[self.rater.id], image_ids=image_ids)

    def visible_labels(self, image_ids: Collection[int] | None = None) -> list[Label]:
        """Every label this rater may see: own only for a blinded annotator, all for reviewers/admins."""
        if self.rater.role.sees_all or self.settings.show_other_raters_to_annotators:
            return labels.current(self.db, image_ids=image_ids)
        return self.my_labels(image_ids)

    def history(self, image_id: int) -> list[Label]:
        return labels.history(self.db, image_id, self.rater.id)
