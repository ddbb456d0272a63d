"""The agreement report over real stored labels and predictions, checked against scikit-learn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

from annotator.domain.entities import Prediction, Role
from annotator.services import agreement
from annotator.storage import catalog, labels, models_repo, people
from annotator.storage.database import open_database
from tests.factories import instance


@pytest.fixture
def project(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    catalog.import_instances(db, [instance(i % 3, series=i // 3, patient=i // 3) for i in range(60)])
    rng = np.random.default_rng(7)
    ims = catalog.images(db)
    truth = rng.choice(4, size=len(ims), p=[0.6, 0.2, 0.15, 0.05])
    def noisy(p: float) -> np.ndarray:
        flip = rng.random(len(ims)) < p
        return np.where(flip, np.clip(truth + rng.choice([-1, 1], len(ims)), 0, 3), truth)
    grades = {"e1": noisy(0.2), "e2": noisy(0.25)}
    for name, g in grades.items():
        r = people.add_rater(db, name, Role.ANNOTATOR)
        labels.add_versions_bulk(db, [(im.id, r.id, 30.0 + rng.normal(), 30.0 + rng.normal(), int(gr))
                                      for im, gr in zip(ims, g, strict=True)][:-2], scale_code="lee", action="set")
    m = models_repo.register(db, name="cv-e1", preset="fast", target="rater:e1", kind="cv", weights_path="/x",
                             weights_sha256="0" * 64, card={})
    model_g = noisy(0.15)
    models_repo.write_predictions(db, m.id, [Prediction(m.id, im.id, 30.0, 30.0, int(g), (0.25,) * 4, 0)
                                             for im, g in zip(ims, model_g, strict=True)])
    grades[f"model:{m.id}"] = model_g
    yield db, grades, m.id
    db.close()


def test_report_matches_sklearn_and_has_the_documented_keys(project) -> None:  # type: ignore[no-untyped-def]
    db, grades, model_id = project
    rep = agreement.agreement_report(db, n_boot=200, seed=1)
    pairs = {(p["a"], p["b"]): p for p in rep["pairs"]}
    assert list(pairs)[:2] == [("rater:e1", "rater:e2"), ("rater:e1", f"model:{model_id}")]
    p = pairs[("rater:e1", "rater:e2")]
    a, b = grades["e1"][:-2], grades["e2"][:-2]
    assert p["n"] == 58
    assert p["accuracy"] == pytest.approx(accuracy_score(a, b), abs=1e-12)
    assert p["f1_macro"] == pytest.approx(f1_score(a, b, average="macro", labels=[0, 1, 2, 3]), abs=1e-9)
    assert p["f1_weighted"] == pytest.approx(f1_score(a, b, average="weighted", labels=[0, 1, 2, 3]), abs=1e-9)
    for key, w in (("kappa", None), ("kappa_linear", "linear"), ("kappa_quadratic", "quadratic")):
        assert p[key] == pytest.approx(cohen_kappa_score(a, b, weights=w), abs=1e-9)
    assert p["distance_mm"]["median"] is not None and p["ci"]["accuracy"][0] <= p["accuracy"] <= p["ci"]["accuracy"][1]
    for key in ("a", "b", "n", "accuracy", "f1_macro", "f1_weighted", "kappa", "kappa_linear", "kappa_quadratic",
                "ac1", "distance_mm", "ci"):
        assert key in p
    assert {"median", "p95"} <= set(p["distance_mm"])
    assert set(rep["group"]) >= {"readers", "fleiss_kappa", "krippendorff_alpha"}
    [cmp] = rep["comparisons"]
    assert cmp["pair_1"] == ["rater:e1", "rater:e2"] and cmp["pair_2"] == ["rater:e1", f"model:{model_id}"]
    assert 0 < cmp["tests"]["accuracy"]["p_value"] <= 1
    json.dumps(rep)  # serialisable, no NaN objects
    md = agreement.as_markdown(rep)
    assert "| rater:e1 | rater:e2 | 58 |" in md


def test_cli_agreement_json(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, _grades, _ = project
    out = subprocess.run([sys.executable, "-m", "annotator", "--db", db.engine.url.database, "agreement",
                          "--readers", "rater:e1", "rater:e2", "--json", "--bootstrap", "100"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    rep = json.loads(out)
    assert [(p["a"], p["b"]) for p in rep["pairs"]] == [("rater:e1", "rater:e2")]
    bad = subprocess.run([sys.executable, "-m", "annotator", "--db", db.engine.url.database, "agreement",
                          "--readers", "rater:nobody"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "nobody" in bad.stderr


def test_the_consensus_is_a_reader_for_statistics(project) -> None:  # type: ignore[no-untyped-def]
    from annotator.services.review import ReviewService

    db, grades, _model_id = project
    people.update_settings(db, None, disagreement_threshold_mm=100.0)  # grades alone decide here
    e1, e2 = grades["e1"][:-2], grades["e2"][:-2]
    ims = catalog.images(db)
    differ = [k for k in range(len(e1)) if e1[k] != e2[k]]
    rev = people.add_rater(db, "rev", Role.REVIEWER)
    for k in differ[:4]:  # a reviewer sides with e2 on four disagreements; the rest stay undecided
        ReviewService(db, rev).accept(ims[k].id, "rater:e2", expected_version=0)
    consensus = {k: int(e1[k]) for k in range(len(e1)) if e1[k] == e2[k]} | {k: int(e2[k]) for k in differ[:4]}
    ks = sorted(consensus)
    rep = agreement.agreement_report(db, ["rater:e1", "consensus"], n_boot=50, seed=1)
    [p] = rep["pairs"]
    assert (p["a"], p["b"], p["n"]) == ("rater:e1", "consensus", len(ks))
    a, b = [int(e1[k]) for k in ks], [consensus[k] for k in ks]
    assert p["accuracy"] == pytest.approx(accuracy_score(a, b), abs=1e-12) and p["accuracy"] < 1
    assert p["kappa_quadratic"] == pytest.approx(cohen_kappa_score(a, b, weights="quadratic"), abs=1e-9)
