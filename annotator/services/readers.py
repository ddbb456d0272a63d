"""Resolve readers (``rater:NAME``, ``model:ID``, ``consensus``) to what each says about each slice."""

from __future__ import annotations

from annotator.domain.entities import Rater
from annotator.domain.readers import ReaderKind, ReaderMark, ReaderRef
from annotator.services.project import policy
from annotator.storage import labels, models_repo, people
from annotator.storage.database import Database


def marks(db: Database, reader: ReaderRef | str) -> dict[int, ReaderMark]:
    """image_id -> the reader's current point/grade on that slice (slices it never labelled are absent)."""
    ref = ReaderRef.parse(reader) if isinstance(reader, str) else reader
    if ref.kind is ReaderKind.RATER:
        rater = people.rater_by_name(db, ref.key)
        return {lab.image_id: ReaderMark(lab.image_id, lab.x_px, lab.y_px, lab.grade, None, lab.version,
                                         lab.created_at.isoformat())
                for lab in labels.current(db, rater_ids=[rater.id])}
    if ref.kind is ReaderKind.MODEL:
        model = models_repo.get(db, int(ref.key))
        return {p.image_id: ReaderMark(p.image_id, p.x_px, p.y_px, p.grade, p.probabilities, None, None)
                for p in models_repo.predictions(db, model.id)}
    from annotator.services.review import consensus_marks

    return consensus_marks(db)


def reader_label(db: Database, ref: ReaderRef) -> str:
    """How export files name a reader: a rater's name, "model NAME (id N)", "consensus"."""
    if ref.kind is ReaderKind.RATER:
        return ref.key
    if ref.kind is ReaderKind.MODEL:
        return f"model {models_repo.get(db, int(ref.key)).name} (id {ref.key})"
    return "consensus"


def all_readers(db: Database) -> list[ReaderRef]:
    """Every reader the project knows: its raters, then its model versions."""
    out = [ReaderRef(ReaderKind.RATER, r.name) for r in people.list_raters(db)]
    out += [ReaderRef(ReaderKind.MODEL, str(m.id)) for m in models_repo.list_versions(db)]
    return out + [ReaderRef(ReaderKind.CONSENSUS)]


def readers_visible_to(db: Database, rater: Rater) -> list[ReaderRef]:
    """The readers whose labels this rater may compare (the agreement screen): other raters and the
    consensus need the right to see other readers, model versions the right to see the model unprompted."""
    rules = policy(db, rater)
    if not rules.may_see_other_readers:
        return [ReaderRef(ReaderKind.RATER, rater.name)]
    return [r for r in all_readers(db) if rules.may_see_model_unprompted or r.kind is not ReaderKind.MODEL]
