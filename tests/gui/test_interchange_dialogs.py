"""File > Export… and File > Import labels…: driven offscreen, the work off the GUI thread, a progress bar,
Cancel that leaves nothing behind."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from PySide6.QtCore import Qt

from annotator.domain.entities import Role
from annotator.services import project as project_service
from annotator.services.formats import ExportContext, registry
from annotator.services.labelling import LabelService
from annotator.storage import catalog, labels, people


def _label(project) -> None:  # type: ignore[no-untyped-def]
    svc = LabelService(project.db, project.alice)
    for n, im in enumerate(catalog.images(project.db)):
        svc.set_label(im.id, 40.0 + n, 50.0, n % 4)


def _open_export(qtbot, window):  # type: ignore[no-untyped-def]
    window.interchange.export_action.trigger()
    qtbot.waitUntil(lambda: window.interchange.export_dialog is not None, timeout=5000)
    return window.interchange.export_dialog


def test_menu_entries_follow_the_policy(open_window, project) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    assert not w.interchange.export_action.isEnabled() and not w.interchange.import_action.isEnabled()
    file_menu = [a.text() for a in w._menu("&File").actions()]
    assert file_menu.index("Export…") < file_menu.index("Import labels…") < file_menu.index("Quit")


def test_export_a_deidentified_bundle_from_the_dialog(qtbot, open_window, project) -> None:  # type: ignore[no-untyped-def]
    _label(project)
    w = open_window(project.rev)
    d = _open_export(qtbot, w)
    assert [d.readers.item(i).text() for i in range(d.readers.count())] == [
        "rater:alice", "rater:bob", "rater:rev", "consensus"]
    d.format.setCurrentIndex(d.format.findData("json"))
    for i in range(d.readers.count()):
        if d.readers.item(i).text() != "rater:alice":
            d.readers.item(i).setCheckState(Qt.CheckState.Unchecked)
    d.deidentify.setChecked(True)
    out = project.folder / "bundle"
    d.out.setText(str(out))
    with qtbot.waitSignal(d.exported, timeout=10000) as got:
        qtbot.mouseClick(d.start_button, Qt.MouseButton.LeftButton)
        assert d.running and d.cancel_button.isEnabled() and not d.start_button.isEnabled()
    summary = got.args[0]
    assert summary.bundle and summary.items == 3 and summary.dicom_copies == 3
    assert d.progress.value() == d.progress.maximum() and "Wrote a json bundle of 3 rows" in d.status.text()
    assert "3 slices may carry text burned into their pixels" in d.status.text()
    manifest = json.loads((out / "bundle.json").read_text())
    assert manifest["readers"] == ["rater:alice"] and manifest["deidentified"]
    sops = {im.sop_instance_uid for im in catalog.images(project.db)}
    assert not sops & {r["sop_uid"] for r in json.loads((out / "labels.json").read_text())["rows"]}
    d.close()


def test_cancel_stops_the_export_and_leaves_nothing(qtbot, open_window, project,  # type: ignore[no-untyped-def]
                                                    monkeypatch) -> None:
    _label(project)
    started, release = threading.Event(), threading.Event()
    real = registry.writer

    def slow_writer(fmt):  # type: ignore[no-untyped-def]
        write = real(fmt)

        def run(ctx: ExportContext) -> list[Path]:
            started.set()
            release.wait(10)
            return write(ctx)
        return run

    monkeypatch.setattr(registry, "writer", slow_writer)
    w = open_window(project.rev)
    d = _open_export(qtbot, w)
    d.deidentify.setChecked(True)
    d.out.setText(str(project.folder / "bundle"))
    qtbot.mouseClick(d.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(started.is_set, timeout=10000)
    qtbot.mouseClick(d.cancel_button, Qt.MouseButton.LeftButton)
    release.set()
    qtbot.waitUntil(lambda: not d.running, timeout=10000)
    assert d.status.text().startswith("Cancelled") and d.start_button.isEnabled()
    assert d.status.text() == "Cancelled: export cancelled: nothing was written"
    assert not [p for p in project.folder.iterdir() if "bundle" in p.name]  # no bundle, no temporary folder
    d.close()


def test_import_labels_from_the_dialog_all_or_nothing(qtbot, open_window, project) -> None:  # type: ignore[no-untyped-def]
    boss = project_service.add_rater(project.db, "boss", Role.ADMIN)
    sops = [im.sop_instance_uid for im in catalog.images(project.db)]
    good = project.folder / "other_tool.csv"
    good.write_text("sop_uid,reader,x_px,y_px,grade\n" + "".join(f"{s},rater:carol,20,30,2\n" for s in sops))
    bad = project.folder / "bad.csv"
    bad.write_text(f"sop_uid,reader,x_px,y_px,grade\n{sops[0]},rater:carol,20,30,2\n9.9.9,rater:carol,1,1,1\n")
    w = open_window(boss)
    assert w.interchange.import_action.isEnabled()
    d = w.interchange.open_import()
    d.path.setText(str(bad))
    qtbot.mouseClick(d.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not d.running, timeout=10000)
    assert "1 bad rows: nothing was imported" in d.status.text()
    assert d.errors.count() == 1
    assert "bad.csv: line 3: sop_uid 9.9.9 is not an imported slice" in d.errors.item(0).text()
    assert labels.count_versions(project.db) == 0
    d.path.setText(str(good))
    with qtbot.waitSignal(d.imported, timeout=10000):
        qtbot.mouseClick(d.start_button, Qt.MouseButton.LeftButton)
    assert d.status.text() == "Imported 3 labels (new raters: carol)." and d.errors.isHidden()
    carol = people.rater_by_name(project.db, "carol")
    assert sorted(lab.grade for lab in labels.current(project.db, rater_ids=[carol.id])) == [2, 2, 2]
    d.close()


def test_the_import_dialog_lists_the_reads_it_passed_over(qtbot, open_window, project) -> None:  # type: ignore[no-untyped-def]
    from annotator.services.interchange import ExportRequest, export

    boss = project_service.add_rater(project.db, "boss", Role.ADMIN)
    _label(project)
    out = project.folder / "coco"
    export(project.db, ExportRequest("coco", out, readers=["rater:alice"]))
    data = json.loads((out / "annotations.json").read_text())
    first = data["annotations"][0]
    first["keypoints"], first["num_keypoints"] = [0, 0, 0], 0
    first["attributes"].update(grade=None, cannot_grade="artefact")
    (out / "annotations.json").write_text(json.dumps(data))
    w = open_window(boss)
    d = w.interchange.open_import()
    d.path.setText(str(out))
    with qtbot.waitSignal(d.imported, timeout=10000):
        qtbot.mouseClick(d.start_button, Qt.MouseButton.LeftButton)
    n = len(data["annotations"])
    assert d.status.text().startswith(f"Imported {n - 1} labels.")
    assert "1 reads passed over (listed below): a label needs a point or a grade" in d.status.text()
    assert d.errors.count() == 1 and not d.errors.isHidden()
    assert "item 1: cannot grade (artefact) without a point" in d.errors.item(0).text()
    d.close()
