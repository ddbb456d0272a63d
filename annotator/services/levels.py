"""Use case: the vertebral level of slices, from the import rule (SeriesDescription) or set by hand."""

from __future__ import annotations

from collections.abc import Sequence

from annotator.domain.entities import Rater
from annotator.domain.errors import InputError
from annotator.domain.policy import Action
from annotator.domain.studies import VertebralLevel, level_in_text
from annotator.services.project import policy
from annotator.storage import levels
from annotator.storage.database import Database


def apply_import_rule(db: Database, sop_uids: Sequence[str]) -> int:
    """Give newly imported slices the level their SeriesDescription names (``AX T2 L4-5`` -> L4-L5);
    slices whose description names none keep none. The number of slices given a level."""
    return levels.apply_rule(db, sop_uids, level_in_text) if sop_uids else 0


def parse_slice_numbers(text: str, n_slices: int) -> list[int]:
    """``3-7``, ``4`` or ``1,3,5-6`` (the worklist's 1-based slice numbers) -> sorted 0-based indices."""
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        lo_text, sep, hi_text = part.partition("-")
        try:
            lo = int(lo_text)
            hi = int(hi_text) if sep else lo
        except ValueError:
            raise InputError(f"--slices {text!r}: write slice numbers like 3-7, 4 or 1,3,5-6") from None
        if not 1 <= lo <= hi <= n_slices:
            raise InputError(f"--slices {text!r}: the series has slices 1 to {n_slices}")
        out.update(range(lo - 1, hi))
    return sorted(out)


def set_series_levels(db: Database, actor: Rater, series_uid: str, slices: str | None,
                      level: VertebralLevel | None) -> int:
    """Set (or clear) the level of some slices of one series (all when ``slices`` is None); audited.
    The number of slices whose level changed."""
    policy(db, actor).require(Action.MANAGE_STUDIES)
    found = levels.series_slices(db, series_uid)
    chosen = range(len(found)) if slices is None else parse_slice_numbers(slices, len(found))
    return levels.set_level(db, [found[i][0] for i in chosen], level, actor_id=actor.id,
                            source=f"series {series_uid}")


def set_image_levels(db: Database, actor: Rater, image_ids: Sequence[int], level: VertebralLevel | None) -> int:
    """Set (or clear) the level of chosen slices (the GUI's selection in the worklist); admins only,
    audited. The number of slices whose level changed."""
    policy(db, actor).require(Action.MANAGE_STUDIES)
    if not image_ids:
        raise InputError("choose the slices whose level to set")
    return levels.set_level(db, list(dict.fromkeys(image_ids)), level, actor_id=actor.id,
                            source=f"{len(image_ids)} slices chosen in the worklist")


def level_counts(db: Database) -> dict[str, int]:
    return levels.counts(db)
