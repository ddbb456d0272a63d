"""Next-sample strategies: registry, ordering, blinding."""

from __future__ import annotations

import pytest

from annotator.domain.entities import Prediction, Role
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
