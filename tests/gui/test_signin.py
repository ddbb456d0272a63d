"""The sign-in screen: passwords for protected raters, and which roles it may create."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication, QMessageBox

from annotator.domain.entities import Role
from annotator.gui.signin import SignInDialog
from annotator.services import auth
from annotator.storage import audit


def _error_boxes() -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets()
            if isinstance(w, QMessageBox) and w.objectName() == "annotator-error" and w.isVisible()]


def _dialog(qtbot, project) -> SignInDialog:  # type: ignore[no-untyped-def]
    dialog = SignInDialog(project.db)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def test_a_protected_rater_signs_in_only_with_the_password(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    auth.set_password(project.db, project.rev, "review-pass")
    dialog = _dialog(qtbot, project)
    names = [dialog.list.item(i).text() for i in range(dialog.list.count())]
    assert any(n.startswith("rev") and "password" in n for n in names)
    assert not any(n.startswith("alice") and "password" in n for n in names)
    dialog.list.setCurrentRow(next(i for i, n in enumerate(names) if n.startswith("rev")))
    dialog.password.setText("guess")
    dialog.accept()
    qtbot.waitUntil(lambda: len(_error_boxes()) == 1)
    [box] = _error_boxes()
    assert "wrong password for rater 'rev'" in box.text()
    box.close()
    assert dialog.rater is None and dialog.isVisible() and dialog.password.text() == ""  # still at sign-in
    dialog.password.setText("review-pass")
    dialog.accept()
    assert dialog.rater is not None and dialog.rater.name == "rev" and not dialog.isVisible()
    assert [e.action for e in audit.entries(project.db, entity="rater", entity_id=str(project.rev.id))][-2:] == [
        "rater.sign_in_refused", "rater.sign_in"]


def test_the_screen_offers_only_the_annotator_role_once_an_admin_is_protected(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    dialog = _dialog(qtbot, project)
    assert [dialog.new_role.itemData(i) for i in range(dialog.new_role.count())] == list(Role)
    dialog.close()
    admin = auth.set_password(project.db, project.rev, "admin-pass")  # rev is a reviewer: nothing locks yet
    assert _dialog(qtbot, project).new_role.count() == len(Role) and admin.role is Role.REVIEWER
    from annotator.storage import people

    auth.set_password(project.db, people.add_rater(project.db, "boss", Role.ADMIN), "boss-pass")
    dialog = _dialog(qtbot, project)
    assert [dialog.new_role.itemData(i) for i in range(dialog.new_role.count())] == [Role.ANNOTATOR]
    dialog.new_name.setText("dana")
    dialog.new_password.setText("danas-pass")
    dialog.create_button.click()
    assert dialog.rater is not None and dialog.rater.name == "dana" and dialog.rater.protected
    assert dialog.rater.role is Role.ANNOTATOR


def test_enter_signs_in_once_or_adds_the_new_rater_where_the_cursor_is(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    from annotator.storage import people

    auth.set_password(project.db, project.rev, "review-pass")
    dialog = _dialog(qtbot, project)
    names = [dialog.list.item(i).text() for i in range(dialog.list.count())]
    dialog.list.setCurrentRow(next(i for i, n in enumerate(names) if n.startswith("rev")))
    dialog.password.setFocus()
    qtbot.keyClicks(dialog.password, "guess")
    qtbot.keyClick(dialog.password, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(_error_boxes()) == 1)
    refusals = [e for e in audit.entries(project.db, entity="rater") if e.action == "rater.sign_in_refused"]
    assert len(refusals) == 1 and len(_error_boxes()) == 1  # one Enter, one attempt
    for box in _error_boxes():
        box.close()
    dialog.new_name.setFocus()
    qtbot.keyClicks(dialog.new_name, "newbie")
    dialog.new_password.setFocus()
    qtbot.keyClicks(dialog.new_password, "newbie-pass")
    qtbot.keyClick(dialog.new_password, Qt.Key.Key_Return)
    assert dialog.rater is not None and dialog.rater.name == "newbie"  # added, not signed in as rev
    assert people.rater_by_name(project.db, "newbie").protected


def test_the_project_rules_say_whether_reviewers_see_reader_names(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QLabel

    from annotator.services import project as project_service

    def rules(dialog: SignInDialog) -> str:
        return " ".join(w.text() for w in dialog.findChildren(QLabel))

    assert "<b>Reader names</b> shown to reviewers" in rules(_dialog(qtbot, project))
    boss = project_service.add_rater(project.db, "boss", Role.ADMIN)
    project_service.change_settings(project.db, boss, hide_reader_names_from_reviewers=True)
    assert "<b>Reader names</b> hidden from reviewers (Reader A, B, …)" in rules(_dialog(qtbot, project))
