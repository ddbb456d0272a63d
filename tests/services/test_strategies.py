"""Next-sample strategies: registry, ordering, blinding."""

from __future__ import annotations

import pytest

from annotator.domain.entities import ModelSuggestion, Prediction, Role
from annotator.domain.errors import InputError
from annotator.services import strategies
from annotator.services.labelling import LabelService
from annotator.storage import catalog, models_repo, people
from tests.factories import instance


def test_registry_and_orderings(sqlite_db) -> None:  # type: ignore[no-untyped-def]
    db = sqlite_db
    catalog.import_instances(db, [instance(i) for i in range(4)])
    ims = catalog.images(db)
    rev = people.add_rater(db, "rev", Role.REVIEWER)
    ann = people.add_rater(db, "ann", Role.ANNOTATOR)
    assert set(strategies.REGISTRY) == {"sequential", "random", "most_uncertain", "most_disagreement"}
    with pytest.raises(InputError, match="available"):
        strategies.get("nope")
    ctx = strategies.StrategyContext(db, ann, seed=1)
    assert strategies.get("sequential")(ims, ctx) == ims
    shuffled = strategies.get("random")(ims, ctx)
    assert sorted(i.id for i in shuffled) == [i.id for i in ims]
    assert shuffled == strategies.get("random")(ims, ctx)  # seeded, stable

    m = models_repo.register(db, name="m", preset="fast", target="rater:ann", kind="train", weights_path="/x",
                             weights_sha256="0" * 64, card={})
    models_repo.activate(db, m.id)
    probs = [(0.97, 0.01, 0.01, 0.01), (0.25, 0.25, 0.25, 0.25), (0.5, 0.5, 0.0, 0.0), None]
    models_repo.write_predictions(
        db, m.id, [Prediction(m.id, im.id, 1, 1, 0, p) for im, p in zip(ims, probs, strict=True)])
    assert strategies.get("most_uncertain")(ims, ctx) == ims  # the project hides the model from annotators
    people.update_settings(db, None, model_suggestion=ModelSuggestion.ALWAYS)
    assert [im.id for im in strategies.get("most_uncertain")(ims, ctx)] == [ims[1].id, ims[2].id, ims[0].id,
                                                                            ims[3].id]
    e1 = LabelService(db, people.add_rater(db, "e1", Role.ANNOTATOR))
    e2 = LabelService(db, people.add_rater(db, "e2", Role.ANNOTATOR))
    for im, (g1, g2) in zip(ims, [(0, 0), (0, 1), (0, 3), (1, 1)], strict=True):
        e1.set_grade(im.id, g1)
        e2.set_grade(im.id, g2)
    rev_ctx = strategies.StrategyContext(db, rev)
    assert [im.id for im in strategies.get("most_disagreement")(ims, rev_ctx)][:2] == [ims[2].id, ims[1].id]
    assert strategies.get("most_disagreement")(ims, ctx) == ims  # blinded annotator: no leak


def _uncertain_project(db):  # type: ignore[no-untyped-def]
    catalog.import_instances(db, [instance(i) for i in range(5)])
    ims = catalog.images(db)
    m = models_repo.register(db, name="m", preset="fast", target="rater:x", kind="train", weights_path="/x",
                             weights_sha256="0" * 64, card={})
    models_repo.activate(db, m.id)
    probs = [(1.0, 0, 0, 0), (0.4, 0.3, 0.3, 0), (0.9, 0.1, 0, 0), (0.25, 0.25, 0.25, 0.25), None]
    models_repo.write_predictions(db, m.id, [Prediction(m.id, im.id, 1, 1, 0, p)
                                             for im, p in zip(ims, probs, strict=True)])
    return ims, probs


def test_worklist_next_and_ranked_list_follow_the_chosen_strategy(sqlite_db) -> None:  # type: ignore[no-untyped-def]
    from annotator.services.worklist import WorklistService

    db = sqlite_db
    ims, probs = _uncertain_project(db)
    people.update_settings(db, None, model_suggestion=ModelSuggestion.ALWAYS)
    ann = people.add_rater(db, "ann", Role.ANNOTATOR)
    wl = WorklistService(db, ann)
    assert wl.next_unlabelled() == ims[0] and wl.load().ranked == ()  # sequential: the tree, no ranking
    wl.set_strategy("most_uncertain")
    ranked = wl.load().ranked
    assert [r.slice.image.id for r in ranked] == [ims[i].id for i in (3, 1, 2, 0, 4)]
    assert [r.rank for r in ranked] == [1, 2, 3, 4, 5]
    assert ranked[0].score == pytest.approx(strategies.entropy(probs[3])) and ranked[-1].score is None
    assert wl.next_unlabelled() == ims[3]
    LabelService(db, ann).set_point(ims[3].id, 10, 10)
    LabelService(db, ann).set_grade(ims[3].id, 1)
    assert wl.next_unlabelled(ims[3].id) == ims[1]  # then the next most uncertain unfinished slice
    with pytest.raises(InputError, match="most_uncertain"):
        wl.set_strategy("least_useful")


def test_strategies_reading_other_readers_are_not_offered_to_a_blinded_annotator(sqlite_db) -> None:  # type: ignore[no-untyped-def]
    from annotator.services.worklist import WorklistService

    db = sqlite_db
    catalog.import_instances(db, [instance(i) for i in range(3)])
    ims = catalog.images(db)
    ann = people.add_rater(db, "ann", Role.ANNOTATOR)
    rev = people.add_rater(db, "rev", Role.REVIEWER)
    e1 = LabelService(db, people.add_rater(db, "e1", Role.ANNOTATOR))
    e2 = LabelService(db, people.add_rater(db, "e2", Role.ANNOTATOR))
    for im, (g1, g2) in zip(ims, [(0, 0), (0, 3), (1, 2)], strict=True):
        e1.set_grade(im.id, g1)
        e2.set_grade(im.id, g2)
    blinded = WorklistService(db, ann)
    assert "most_disagreement" not in [s.name for s in blinded.available_strategies()]
    blinded.strategy = "most_disagreement"  # e.g. remembered from a reviewer session: ignored
    assert [r.slice.image.id for r in blinded.load().ranked] == [im.id for im in ims]
    reviewer = WorklistService(db, rev, strategy="most_disagreement")
    assert [r.slice.image.id for r in reviewer.load().ranked] == [ims[1].id, ims[2].id, ims[0].id]
    people.update_settings(db, None, show_other_raters_to_annotators=True)
    assert "most_disagreement" in [s.name for s in blinded.available_strategies()]


def test_the_model_ordering_follows_the_projects_model_suggestion_policy(sqlite_db) -> None:  # type: ignore[no-untyped-def]
    """A study that hides the model from its readers must not let its uncertainty steer them either."""
    from annotator.services.worklist import WorklistService

    db = sqlite_db
    ims, _probs = _uncertain_project(db)
    ann = WorklistService(db, people.add_rater(db, "ann", Role.ANNOTATOR), strategy="most_uncertain")
    rev = WorklistService(db, people.add_rater(db, "rev", Role.REVIEWER), strategy="most_uncertain")
    assert "most_uncertain" not in [s.name for s in ann.available_strategies()]  # default policy: hidden
    assert [r.slice.image.id for r in ann.load().ranked] == [im.id for im in ims]  # sequential, no scores
    assert all(r.score is None for r in ann.load().ranked) and ann.next_unlabelled() == ims[0]
    assert "most_uncertain" in [s.name for s in rev.available_strategies()]  # reviewers always see the model
    assert rev.next_unlabelled() == ims[3]
    people.update_settings(db, None, model_suggestion=ModelSuggestion.AFTER_OWN_GRADE)
    assert "most_uncertain" not in [s.name for s in ann.available_strategies()]  # her first look is her own
    assert ann.next_unlabelled() == ims[0]
    people.update_settings(db, None, model_suggestion=ModelSuggestion.ALWAYS)
    assert "most_uncertain" in [s.name for s in ann.available_strategies()]
    assert ann.next_unlabelled() == ims[3]


@pytest.mark.parametrize("strategy", ["random", "most_uncertain"])
def test_a_filtered_ranked_list_and_next_follow_one_order(sqlite_db, strategy) -> None:  # type: ignore[no-untyped-def]
    """The whole catalogue is ranked once, then filtered: Enter walks the list as shown."""
    from annotator.services.worklist import WorklistFilter, WorklistService

    db = sqlite_db
    catalog.import_instances(db, [instance(i) for i in range(12)])
    ims = catalog.images(db)
    m = models_repo.register(db, name="m", preset="fast", target="rater:x", kind="train", weights_path="/x",
                             weights_sha256="0" * 64, card={})
    models_repo.activate(db, m.id)
    models_repo.write_predictions(db, m.id, [Prediction(m.id, im.id, 1, 1, 0, (1 - k / 24, k / 24, 0, 0))
                                             for k, im in enumerate(ims)])
    people.update_settings(db, None, model_suggestion=ModelSuggestion.ALWAYS)
    ann = people.add_rater(db, "ann", Role.ANNOTATOR)
    wl = WorklistService(db, ann, strategy=strategy, seed=7)
    full = [r.slice.image.id for r in wl.load().ranked]
    done = {full[1], full[4], full[5], full[9]}
    for image_id in done:
        LabelService(db, ann).set_point(image_id, 5, 5)
        LabelService(db, ann).set_grade(image_id, 1)
    shown = [r.slice.image.id for r in wl.load(WorklistFilter.UNLABELLED).ranked]
    assert shown == [i for i in full if i not in done]  # the filter keeps the order of the whole list
    walked, at = [], None
    for _ in shown:
        nxt = wl.next_unlabelled(at)
        assert nxt is not None
        walked.append(nxt.id)
        at = nxt.id
    assert walked == shown
