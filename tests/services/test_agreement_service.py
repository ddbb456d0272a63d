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
from annotator.domain.errors import InputError, NotFound
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.services import agreement
from annotator.storage import catalog, labels, models_repo, people
from annotator.storage.database import open_database
from tests.factories import instance

E1, E2 = ReaderRef(ReaderKind.RATER, "e1"), ReaderRef(ReaderKind.RATER, "e2")
CONSENSUS = ReaderRef(ReaderKind.CONSENSUS)
PAIR_KEYS = {"a", "b", "n", "accuracy", "f1_macro", "f1_weighted", "kappa", "kappa_linear", "kappa_quadratic", "ac1",
             "ac2", "kappa_se", "distance_mm", "bland_altman_mm", "confusion", "precision", "recall", "ci"}


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
    model = ReaderRef(ReaderKind.MODEL, str(model_id))
    rep = agreement.agreement_report(db, n_boot=200, seed=1)
    pairs = {p.pair: p for p in rep.pairs}
    assert list(pairs)[:2] == [(E1, E2), (E1, model)]
    p = pairs[(E1, E2)]
    assert rep.pair(E2, E1) is p
    f = p.figures
    a, b = grades["e1"][:-2], grades["e2"][:-2]
    assert f.n == 58
    assert f.accuracy == pytest.approx(accuracy_score(a, b), abs=1e-12)
    assert f.f1_macro == pytest.approx(f1_score(a, b, average="macro", labels=[0, 1, 2, 3]), abs=1e-9)
    assert f.f1_weighted == pytest.approx(f1_score(a, b, average="weighted", labels=[0, 1, 2, 3]), abs=1e-9)
    for kappa, w in ((f.kappa, None), (f.kappa_linear, "linear"), (f.kappa_quadratic, "quadratic")):
        assert kappa.value == pytest.approx(cohen_kappa_score(a, b, weights=w), abs=1e-9)
    assert p.distance is not None and p.distance.n == 58 and np.isfinite(p.distance.median_mm)
    assert p.ci["accuracy"].low <= f.accuracy <= p.ci["accuracy"].high
    [cmp] = rep.comparisons
    assert (cmp.pair_1, cmp.pair_2, cmp.reference) == ((E1, E2), (E1, model), E1)
    assert 0 < cmp.difference.tests["accuracy"].p_value <= 1
    assert [(h.a, h.b) for h in rep.stuart_maxwell] == [(E1, E2)]
    assert rep.group.readers == (E1, E2, model, CONSENSUS) and rep.group.figures is not None
    with pytest.raises(NotFound, match="rater:e3"):
        rep.pair(E1, ReaderRef(ReaderKind.RATER, "e3"))

    js = json.loads(json.dumps(agreement.report_json(rep), allow_nan=False))  # serialisable, no NaN
    assert set(js) == {"scale", "n_slices", "bootstrap", "pairs", "comparisons", "stuart_maxwell", "group"}
    jp = js["pairs"][0]
    assert set(jp) == PAIR_KEYS and (jp["a"], jp["b"], jp["n"]) == ("rater:e1", "rater:e2", 58)
    assert jp["accuracy"] == f.accuracy and jp["kappa_se"]["quadratic"] == f.kappa_quadratic.se
    assert jp["ci"]["accuracy"] == [p.ci["accuracy"].low, p.ci["accuracy"].high]
    assert set(jp["distance_mm"]) == {"median", "p95", "mean", "n"}
    assert jp["distance_mm"]["median"] == p.distance.median_mm
    assert set(jp["bland_altman_mm"]) == {"x", "y"} and jp["bland_altman_mm"]["x"]["bias"] == p.distance.x.bias
    assert jp["confusion"] == [list(r) for r in f.confusion] and set(jp["precision"]) == {"0", "1", "2", "3"}
    assert set(js["group"]) == {"readers", "fleiss_kappa", "krippendorff_alpha", "n_complete"}
    assert js["group"]["readers"] == ["rater:e1", "rater:e2", f"model:{model_id}", "consensus"]
    [jc] = js["comparisons"]
    assert jc["pair_1"] == ["rater:e1", "rater:e2"] and jc["pair_2"] == ["rater:e1", f"model:{model_id}"]
    assert jc["tests"]["accuracy"]["p_value"] == cmp.difference.tests["accuracy"].p_value
    assert jc["mcnemar"]["reference"] == "rater:e1"
    md = agreement.as_markdown(rep)
    assert "| rater:e1 | rater:e2 | 58 |" in md


def test_undefined_figures_are_nan_in_the_report_and_null_in_json(project) -> None:  # type: ignore[no-untyped-def]
    db, grades, _ = project
    lone = people.add_rater(db, "lone", Role.ANNOTATOR)  # one slice, e1's grade: kappa is 0/0, most precisions too
    labels.add_versions_bulk(db, [(catalog.images(db)[0].id, lone.id, 30.0, 30.0, int(grades["e1"][0]))],
                             scale_code="lee", action="set")
    rep = agreement.agreement_report(db, [E1, "rater:lone"], n_boot=100)
    [p] = rep.pairs
    assert p.figures.n == 1 and np.isnan(p.figures.kappa_quadratic.value) and p.ci == {}  # no CI from 1 slice
    jp = agreement.report_json(rep)["pairs"][0]
    assert jp["kappa_quadratic"] is None and jp["ci"] == {} and jp["accuracy"] == p.figures.accuracy == 1.0
    assert jp["bland_altman_mm"]["x"]["sd"] is None and np.isnan(p.figures.distance.x.sd)  # type: ignore[union-attr]
    assert [jp["precision"][str(g)] is None for g in range(4)] == [np.isnan(p.figures.precision[g]) for g in range(4)]
    assert any(jp["precision"][str(g)] is None for g in range(4))
    assert "| rater:e1 | rater:lone | 1 |" in agreement.as_markdown(rep)
    assert " | – | " in agreement.as_markdown(rep)  # the undefined kappa


def test_a_model_whose_target_is_not_a_reader_is_named(project) -> None:  # type: ignore[no-untyped-def]
    db, _grades, _ = project
    m = models_repo.register(db, name="odd", preset="fast", target="somebody", kind="cv", weights_path="/x",
                             weights_sha256="0" * 64, card={})
    with pytest.raises(InputError, match=f"model {m.id}: its target 'somebody'"):
        agreement.agreement_report(db, [E1, ReaderRef(ReaderKind.MODEL, str(m.id))], n_boot=0)


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
    rep = agreement.agreement_report(db, ["rater:e1", "consensus"], n_boot=50, seed=1)  # text: parsed
    [p] = rep.pairs
    assert (p.a, p.b, p.figures.n) == (E1, CONSENSUS, len(ks))
    a, b = [int(e1[k]) for k in ks], [consensus[k] for k in ks]
    assert p.figures.accuracy == pytest.approx(accuracy_score(a, b), abs=1e-12) and p.figures.accuracy < 1
    assert p.figures.kappa_quadratic.value == pytest.approx(cohen_kappa_score(a, b, weights="quadratic"), abs=1e-9)


def test_no_resamples_means_no_difference_interval(project) -> None:  # type: ignore[no-untyped-def]
    """0 bootstrap resamples ("no CIs"): the model comparison keeps its differences and McNemar, but has no
    CI or bootstrap p-value, rather than a one-resample "interval" a reader would take for a real one."""
    db, _grades, _model_id = project
    rep = agreement.agreement_report(db, n_boot=0)
    [cmp] = rep.comparisons
    assert cmp.difference.n_resamples == 0
    for t in cmp.difference.tests.values():
        assert np.isfinite(t.difference) and t.difference == pytest.approx(t.estimate_1 - t.estimate_2)
        assert np.isnan(t.low) and np.isnan(t.high) and np.isnan(t.p_value)
    assert 0 <= cmp.mcnemar.p_value <= 1
    assert all(p.ci == {} for p in rep.pairs)
    js = json.loads(json.dumps(agreement.report_json(rep), allow_nan=False))
    assert js["comparisons"][0]["tests"]["accuracy"]["ci"] == [None, None]
    assert js["comparisons"][0]["tests"]["accuracy"]["p_value"] is None
    row = next(ln for ln in agreement.as_markdown(rep).splitlines() if " vs " in ln)
    assert row.split(" | ")[1].endswith("(–)") and row.split(" | ")[2] == "–"
    with_ci = agreement.agreement_report(db, n_boot=50, seed=1).comparisons[0].difference.tests["accuracy"]
    assert np.isfinite(with_ci.low) and with_ci.low <= with_ci.difference <= with_ci.high
