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

from annotator.domain.entities import ImageRef, Label, LabelAction, ProjectSettings, Rater
from annotator.domain.errors import InputError
from annotator.domain.geometry import ImageGeometry
from annotator.domain.policy import Policy
from annotator.domain.scales import GradingScale, load_scale
from annotator.storage import catalog, labels, people
from annotator.storage.database import Database


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
        if v.action == LabelAction.UNDO:
            cursor = max(cursor - 1, 0)
        elif v.action == LabelAction.REDO:
            cursor = min(cursor + 1, len(states) - 1)
        else:
            del states[cursor + 1:]
            states.append(LabelState(v.x_px, v.y_px, v.grade, v.scale_code))
            cursor += 1
    return states, cursor


def undo_redo(history: list[Label]) -> tuple[bool, bool]:
    """(can undo, can redo) after this history (oldest first)."""
    states, cursor = undo_timeline(history)
    return cursor > 0, cursor < len(states) - 1


@dataclass(frozen=True, slots=True)
class Shown:
    """What a screen shows of one slice when its rater acts on it, so the action reads nothing back.

    ``own`` is the rater's newest version as the screen holds it (None when it shows none); the new
    version follows it, and if it is no longer the newest the action fails with a ConflictError
    instead of overwriting a label the rater has not seen.
    """

    image: ImageRef  # its geometry bounds a point
    own: Label | None
    scale: GradingScale  # the project's grading scale


def _check_point(g: ImageGeometry, x: float, y: float) -> None:
    if not g.contains(x, y):
        raise InputError(f"point ({x:.1f}, {y:.1f}) lies outside the {g.columns}x{g.rows} image")


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

    def _context(self, image_id: int, shown: Shown | None) -> tuple[ImageGeometry, Label | None, GradingScale]:
        """(geometry, newest own version, scale): from what the screen shows, else read."""
        if shown is None:
            return catalog.image_by_id(self.db, image_id).geometry, self._current(image_id), self.scale
        if shown.image.id != image_id:
            raise InputError(f"the slice shown is image {shown.image.id}, not image {image_id}")
        return shown.image.geometry, shown.own, shown.scale

    def _commit(self, image_id: int, prev: Label | None, x: float | None, y: float | None, grade: int | None,
                scale_code: str, action: LabelAction, key: str | None) -> Label:
        return labels.add_version_after(self.db, prev, image_id=image_id, rater_id=self.rater.id, x_px=x, y_px=y,
                                        grade=grade, scale_code=scale_code, action=action, key=key)

    # ``key`` (every action below): the action's idempotency key, kept by a caller that may repeat the action
    # after a NotCommitted; repeated with the same key, an action that had been stored returns that version.
    def set_point(self, image_id: int, x: float, y: float, *, shown: Shown | None = None,
                  key: str | None = None) -> Label:
        geometry, prev, scale = self._context(image_id, shown)
        _check_point(geometry, x, y)
        return self._commit(image_id, prev, x, y, prev.grade if prev else None, scale.code, LabelAction.POINT, key)

    def set_grade(self, image_id: int, grade: int, *, shown: Shown | None = None, key: str | None = None) -> Label:
        _, prev, scale = self._context(image_id, shown)
        scale.grade(grade)  # raises on an out-of-scale grade
        return self._commit(image_id, prev, prev.x_px if prev else None, prev.y_px if prev else None, grade,
                            scale.code, LabelAction.GRADE, key)

    def set_label(self, image_id: int, x: float | None, y: float | None, grade: int | None,
                  action: LabelAction = LabelAction.SET, *, key: str | None = None) -> Label:
        if (x is None) != (y is None):
            raise InputError("a point needs both x_px and y_px")
        geometry, prev, scale = self._context(image_id, None)
        if x is not None and y is not None:
            _check_point(geometry, x, y)
        if grade is not None:
            scale.grade(grade)
        return self._commit(image_id, prev, x, y, grade, scale.code, LabelAction(action), key)

    def set_many(self, items: list[tuple[int, float, float, int]], action: LabelAction = LabelAction.SET) -> int:
        """Many complete labels (image_id, x, y, grade), each checked as ``set_label`` checks it, then
        committed in ONE transaction with an audit entry each: all or nothing (simulations, batch reads)."""
        scale = self.scale
        geoms = {im.id: im.geometry for im in catalog.images(self.db)}
        for image_id, x, y, grade in items:
            g = geoms.get(image_id)
            if g is None:
                raise InputError(f"image id {image_id} does not exist")
            _check_point(g, x, y)
            scale.grade(grade)
        return labels.add_versions_bulk(self.db, [(i, self.rater.id, x, y, g) for i, x, y, g in items],
                                        scale_code=scale.code, action=LabelAction(action))

    def clear(self, image_id: int, *, shown: Shown | None = None, key: str | None = None) -> Label:
        _, prev, scale = self._context(image_id, shown)
        return self._commit(image_id, prev, None, None, None, scale.code, LabelAction.CLEAR, key)

    def my_labels(self, image_ids: Collection[int] | None = None) -> list[Label]:
        return labels.current(self.db, rater_ids=[self.rater.id], image_ids=image_ids)

    def visible_labels(self, image_ids: Collection[int] | None = None) -> list[Label]:
        """Every label this rater may see: own only for a blinded annotator, all for reviewers/admins."""
        if self.policy.may_see_other_readers:
            return labels.current(self.db, image_ids=image_ids)
        return self.my_labels(image_ids)

    def history(self, image_id: int) -> list[Label]:
        return labels.history(self.db, image_id, self.rater.id)

    def histories(self, image_ids: Collection[int]) -> dict[int, list[Label]]:
        """This rater's history on each slice (a whole series at once), in one query."""
        return labels.histories(self.db, image_ids, self.rater.id)

    def undo_redo_available(self, image_id: int) -> tuple[bool, bool]:
        """(can undo, can redo) for this rater on one slice."""
        return undo_redo(self.history(image_id))

    def _restore(self, image_id: int, step: int, action: LabelAction, key: str | None) -> Label | None:
        if key is not None and (earlier := labels.by_key(self.db, key)) is not None:
            return earlier  # repeated after it was stored: the history has moved on since, so look it up
        hist = self.history(image_id)
        states, cursor = undo_timeline(hist)
        target = cursor + step
        if not 0 <= target < len(states):
            return None
        st = states[target]
        return self._commit(image_id, hist[-1] if hist else None, st.x_px, st.y_px, st.grade,
                            st.scale_code or self.scale.code, action, key)

    def undo(self, image_id: int, *, key: str | None = None) -> Label | None:
        """Commit a new version restoring the state before the latest action not yet undone.

        Returns None (and commits nothing) when there is nothing left to undo on this slice.
        """
        return self._restore(image_id, -1, LabelAction.UNDO, key)

    def redo(self, image_id: int, *, key: str | None = None) -> Label | None:
        """Commit a new version re-applying the latest undone action; None when there is none."""
        return self._restore(image_id, +1, LabelAction.REDO, key)
