"""A file the database refuses is rejected with a reason and leaves no rows, even when the error has no
message (an empty message used to raise IndexError out of the importer and abort the batch)."""

from __future__ import annotations

import pytest

from annotator.domain.entities import DicomInstance, ImportStatus
from annotator.storage import catalog
from tests.factories import instance


@pytest.mark.parametrize("error", [ValueError(), ValueError("  \n "), RuntimeError("CHECK constraint failed")])
def test_refused_file_is_rejected_and_the_batch_goes_on(sqlite_db, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                         error: Exception) -> None:
    real = catalog._image_values

    def refuse_second(series_id: int, inst: DicomInstance) -> dict[str, object]:
        if inst.sop_instance_uid.endswith(".1"):
            raise error
        return real(series_id, inst)

    monkeypatch.setattr(catalog, "_image_values", refuse_second)
    results = catalog.import_instances(sqlite_db, [instance(0), instance(1, series=1, patient=1), instance(2)])
    assert [r.status for r in results] == [ImportStatus.IMPORTED, ImportStatus.REJECTED, ImportStatus.IMPORTED]
    reason = results[1].reason
    assert reason.startswith("database refused it: ") and reason.strip() and "\n" not in reason
    assert (str(error).strip() or type(error).__name__) in reason
    counts = catalog.counts(sqlite_db)
    assert (counts.images, counts.series, counts.studies, counts.patients) == (2, 1, 1, 1)  # nothing partial
