"""Use case: a rater labels slices (canal centre and/or grade), one committed version per action.

Blinding lives here, not in widgets: an annotator's queries return only that rater's labels unless
the project allows otherwise; reviewers and admins see every rater.

Undo and redo never delete: each commits a NEW version that restores an earlier state. The rule, per
(slice, rater), replays the stored history like an editor's undo stack: every ordinary action pushes
its state (discarding any redo states above the cursor), "undo" moves the cursor one state down and
"redo" one state up. So undo restores the state before the latest action not yet undone, repeated
undos walk further back down to the empty slice, redo re-applies what was undone, and a new action
after an undo discards the redo branch. Because the rule reads only the stored history, it gives the
same answer after a restart or from the CLI.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import NamedTuple

from annotator.domain.entities import Label, ProjectSettings, Rater
from annotator.domain.errors import InputError
from annotator.domain.policy import Policy
from annotator.domain.scales import GradingScale, load_scale
from annotator.storage import catalog, labels, people
from annotator.storage.database import Database

UNDO = "undo"
REDO = "redo"


class LabelState(NamedTuple):
    x_px: float | None
    y_px: float | None
    grade: int | None
    scale_code: str | None  # None for the empty state before any action


EMPTY_STATE = LabelState(None, None, None, None)


def undo_timeline(history: list[Label]) -> tuple[list[LabelState], int]:
    """Replay a label history (oldest first) into (states, cursor): states[cursor] is current."""
    states = [EMPTY_STATE]
    cursor = 0
    for v in history:
        if v.action == UNDO:
            cursor = max(cursor - 1, 0)
        elif v.action == REDO:
            cursor = min(cursor + 1, len(states) - 1)
        else:
            del states[cursor + 1:]
            states.append(LabelState(v.x_px, v.y_px, v.grade, v.scale_code))
            cursor += 1
    return states, cursor


@dataclass
class LabelService:
    db: Database
    rater: Rater

    @property
    def settings(self) -> ProjectSettings:
        return people.get_settings(self.db)

    @property
    def policy(self) -> Policy:
        return Policy.of(self.rater, self.settings)

    @property
    def scale(self) -> GradingScale:
        return load_scale(self.settings.scale_code)

    def _current(self, image_id: int) -> Label | None:
        found = labels.current(self.db, rater_ids=[self.rater.id], image_ids=[image_id], include_empty=True)
        return found[0] if found else None

    def _validate_point(self, image_id: int, x: float, y: float) -> None:
        g = catalog.image_by_id(self.db, image_id).geometry
        if not g.contains(x, y):
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
        scale = self.scale
        scale.grade(grade)  # raises on an out-of-scale grade
        prev = self._current(image_id)
        return labels.add_version(self.db, image_id=image_id, rater_id=self.rater.id,
                                  x_px=prev.x_px if prev else None, y_px=prev.y_px if prev else None,
                                  grade=grade, scale_code=scale.code, action="grade",
                                  expected_version=prev.version if prev else 0)

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

    def set_many(self, items: list[tuple[int, float, float, int]], action: str = "set") -> int:
        """Many complete labels (image_id, x, y, grade), each checked as ``set_label`` checks it, then
        committed in ONE transaction with an audit entry each: all or nothing (simulations, batch reads)."""
        scale = self.scale
        geoms = {im.id: im.geometry for im in catalog.images(self.db)}
        for image_id, x, y, grade in items:
            g = geoms.get(image_id)
            if g is None:
                raise InputError(f"image id {image_id} does not exist")
            if not g.contains(x, y):
                raise InputError(f"point ({x:.1f}, {y:.1f}) lies outside the {g.columns}x{g.rows} image")
            scale.grade(grade)
        return labels.add_versions_bulk(self.db, [(i, self.rater.id, x, y, g) for i, x, y, g in items],
                                        scale_code=scale.code, action=action)

    def clear(self, image_id: int) -> Label:
        prev = self._current(image_id)
        return self._commit(image_id, None, None, None, "clear", prev)

    def my_labels(self, image_ids: Collection[int] | None = None) -> list[Label]:
        return labels.current(self.db, rater_ids=[self.rater.id], image_ids=image_ids)

    def visible_labels(self, image_ids: Collection[int] | None = None) -> list[Label]:
        """Every label this rater may see: own only for a blinded annotator, all for reviewers/admins."""
        if self.policy.may_see_other_readers:
            return labels.current(self.db, image_ids=image_ids)
        return self.my_labels(image_ids)

    def history(self, image_id: int) -> list[Label]:
        return labels.history(self.db, image_id, self.rater.id)

    def undo_redo_available(self, image_id: int) -> tuple[bool, bool]:
        """(can undo, can redo) for this rater on one slice."""
        states, cursor = undo_timeline(self.history(image_id))
        return cursor > 0, cursor < len(states) - 1

    def _restore(self, image_id: int, step: int, action: str) -> Label | None:
        hist = self.history(image_id)
        states, cursor = undo_timeline(hist)
        target = cursor + step
        if not 0 <= target < len(states):
            return None
        st = states[target]
        return labels.add_version(self.db, image_id=image_id, rater_id=self.rater.id, x_px=st.x_px, y_px=st.y_px,
                                  grade=st.grade, scale_code=st.scale_code or self.scale.code, action=action,
                                  expected_version=hist[-1].version if hist else 0)

    def undo(self, image_id: int) -> Label | None:
        """Commit a new version restoring the state before the latest action not yet undone.

        Returns None (and commits nothing) when there is nothing left to undo on this slice.
        """
        return self._restore(image_id, -1, UNDO)

    def redo(self, image_id: int) -> Label | None:
        """Commit a new version re-applying the latest undone action; None when there is none."""
        return self._restore(image_id, +1, REDO)
