"""`make run` opens the demo with a model: the second view shows its point, grade and probabilities on the
first screen, without the newcomer knowing about the training panel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from annotator.services import models as model_service
from annotator.services import project as project_service
from annotator.storage import models_repo


def test_the_demo_opens_with_an_active_model_shown_side_by_side(qtbot, qsettings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db_path = tmp_path / "demo.db"
    cmd = [sys.executable, "-m", "annotator", "--db", str(db_path), "demo", "--patients", "6", "--seed", "4",
           "--matrix", "128", "--dicom-dir", str(tmp_path / "dicom"), "--if-missing", "--epochs", "2"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    assert "is active" in out
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout  # make run twice
    assert "a model is already active" in again

    db = project_service.open_project(str(db_path))
    try:
        model = model_service.get_model(db, None)
        assert model.active and model.target == "consensus"
        from annotator.domain.studies import Orientation, orientation_of
        from annotator.storage import catalog

        images = catalog.images(db)
        axial = {im.id for im in images if orientation_of(im.geometry.image_orientation, 30) is Orientation.AXIAL}
        assert {im.id for im in images if im.level is not None} < axial < {im.id for im in images}
        assert {p.image_id for p in models_repo.predictions(db, model.id)} == axial  # no sagittal, no coronal
        reviewer = project_service.rater_by_name(db, "reviewer")  # the demo's one human account

        from annotator.gui.main_window import MainWindow

        w = MainWindow(db, reviewer, qsettings)
        qtbot.addWidget(w)
        w.resize(1400, 900)
        w.show()
        qtbot.waitExposed(w)
        qtbot.waitUntil(lambda: w.session.showing_current, timeout=10000)
        assert w.compare.isVisible()  # the second view is on from the first screen
        assert w.session.current.level is not None  # it opens on a slice to grade, not on a localizer
        info = w.compare.info.text()
        pred = models_repo.predictions(db, model.id)
        shown = next(p for p in pred if p.image_id == w.session.current.id)
        assert f"<b>Model</b> {model.name}: grade" in info
        assert shown.probabilities is not None and f"{max(shown.probabilities):4.2f}" in info
        assert any(name.startswith("model:") for name in w.compare.legend_names)
        w.close()
    finally:
        db.close()
