"""GUI fixtures: small real DICOM series imported through the services, raters, and a leak guard.

Every GUI test runs offscreen (tests/conftest.py sets QT_QPA_PLATFORM) and must leave no worker
thread running and no top-level widget alive.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def write_mr_series(folder: Path, *, n: int = 3, rows: int = 128, cols: int = 128,
                    spacing: tuple[float, float] | None = (0.5, 0.6), patient: str = "P0001",
                    window: tuple[float, float] | None = (600.0, 1200.0), seed: int = 0,
                    photometric: str = "MONOCHROME2") -> list[Path]:
    """Write ``n`` axial uint16 MR slices; pixel [r, c] = 10 * r + c + 1000 * slice (easy to check)."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for i in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MR_STORAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = MR_STORAGE
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName = patient, f"Test^{patient}"
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber = "MR", "AX T2", 3
        ds.StudyDate, ds.StudyDescription = "20240301", "LUMBAR SPINE"
        ds.InstanceNumber = n - i  # reversed on purpose: order must come from the position
        ds.ImagePositionPatient = [-30.0, -30.0, 4.0 * i]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness = 4.0
        if spacing is not None:
            ds.PixelSpacing = list(spacing)
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        r, c = np.mgrid[0:rows, 0:cols]
        ds.PixelData = ((10 * r + c + 1000 * i) % 4096).astype("<u2").tobytes()
        path = folder / f"slice{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@dataclass
class Project:
    db: object  # annotator Database, opened through the services
    url: str
    alice: object
    bob: object
    rev: object
    folder: Path


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """A project with one 3-slice series (128x128, 0.5 x 0.6 mm) and raters alice, bob, rev (reviewer)."""
    from annotator.domain.entities import Role
    from annotator.services import project as project_service
    from annotator.services.importing import import_paths

    url = f"sqlite:///{tmp_path / 'project.db'}"
    db = project_service.open_project(url)
    write_mr_series(tmp_path / "dicom" / "s1")
    results = import_paths(db, [tmp_path / "dicom"])
    assert all(r.status.value == "imported" for r in results), results
    p = Project(db=db, url=url, alice=project_service.add_rater(db, "alice", Role.ANNOTATOR),
                bob=project_service.add_rater(db, "bob", Role.ANNOTATOR),
                rev=project_service.add_rater(db, "rev", Role.REVIEWER), folder=tmp_path)
    yield p
    db.close()  # type: ignore[attr-defined]


@pytest.fixture
def qsettings(tmp_path: Path):  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "user.ini"), QSettings.Format.IniFormat)


@pytest.fixture(autouse=True, scope="session")
def _instant_mouse() -> None:
    """Synthetic mouse moves come microseconds apart; pyqtgraph drops moves above 100/s by default."""
    import pyqtgraph as pg

    pg.setConfigOption("mouseRateLimit", 0)


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a GUI test that leaves worker threads running or top-level widgets alive."""
    from PySide6.QtCore import QCoreApplication, QEvent, QThreadPool
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    before = {id(w) for w in QApplication.topLevelWidgets()} if app is not None else set()
    yield
    from annotator.gui import background

    pool = QThreadPool.globalInstance()
    pool.waitForDone(10000)
    assert pool.activeThreadCount() == 0, "worker threads still running after the test"
    assert background.wait_idle(10000), "background operations still running after the test"
    if QApplication.instance() is None:
        return
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()
    gc.collect()  # Python-owned widgets without a parent go with their last reference
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    left = [w for w in QApplication.topLevelWidgets() if id(w) not in before]
    assert not left, f"top-level widgets left open: {left}"


@pytest.fixture
def open_window(qtbot, project: Project, qsettings):  # type: ignore[no-untyped-def]
    """Factory: a shown MainWindow for a rater, waiting until its first slice is on screen."""
    from annotator.gui.main_window import MainWindow

    def make(rater, **kwargs):  # type: ignore[no-untyped-def]
        w = MainWindow(project.db, rater, qsettings, **kwargs)
        qtbot.addWidget(w)
        w.resize(1400, 900)
        w.show()
        qtbot.waitExposed(w)
        qtbot.waitUntil(lambda: w.session.showing_current and not w.busy, timeout=5000)  # worklist listed too
        return w

    return make
