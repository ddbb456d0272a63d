"""`annotator demo`: generate a lumbar exam per patient, import it, simulated experts through the labelling
service on the axial slices only."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from annotator.storage import audit, catalog, labels, people
from annotator.storage.database import open_database


def _run(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "annotator", *args], capture_output=True, text=True,
                          check=True, timeout=300).stdout


def test_demo_builds_a_labelled_project_and_is_reproducible(tmp_path: Path) -> None:
    db_path = tmp_path / "proj" / "demo.db"
    out = _run("demo", "--patients", "4", "--seed", "3", "--matrix", "128", "--db", str(db_path),
               "--dicom-dir", str(tmp_path / "dicom"))
    assert "4 patients" in out
    status = json.loads(_run("--db", str(db_path), "status", "--json"))
    # per patient: localizer, sagittal T2, axial T2 at L3-L4, L4-L5 and L5-S1
    assert status["patients"] == 4 and status["series"] == 4 * 5
    assert status["images"] == 4 * (3 + 5 + 3 * 3)  # 3 localizer images, 5 sagittal, 3 axial per level
    n = 4 * 3 * 3  # the experts read every axial slice and nothing else
    assert status["labels_per_rater"] == {"expert1": n, "expert2": n, "reviewer": 0, "admin": 0}

    db = open_database(str(db_path))
    raters = {r.name: r for r in people.list_raters(db)}
    assert raters["expert1"].simulated and raters["expert2"].simulated and not raters["reviewer"].simulated
    assert "truth" not in raters
    cur = labels.current(db, rater_ids=[raters["expert1"].id])
    assert all(lab.complete and lab.action == "simulated" for lab in cur)
    assert len([e for e in audit.entries(db, entity="annotation")]) == 2 * n
    truth_lines = (tmp_path / "dicom" / "truth.csv").read_text().splitlines()[1:]
    truth = {line.split(",")[0]: line.split(",") for line in truth_lines}
    assert len(truth) == n and Counter(t[-1] for t in truth.values()) == {"L3-L4": 12, "L4-L5": 12, "L5-S1": 12}
    by_id = {im.id: im for im in catalog.images(db)}
    axial = {i for i, im in by_id.items() if im.geometry.normal == (0.0, 0.0, 1.0)
             and by_id[i].sop_instance_uid in truth}
    assert {lab.image_id for lab in cur} == axial and len(axial) == n  # no label on a localizer or sagittal
    for lab in cur:  # the click lands within a few mm of the truth centre
        t = truth[by_id[lab.image_id].sop_instance_uid]
        g = by_id[lab.image_id].geometry
        assert g.distance_mm((lab.x_px, lab.y_px), (float(t[2]), float(t[3]))) < 5.0  # type: ignore[arg-type]
    assert people.get_settings(db).required_raters == ("expert1", "expert2")

    # the seed study, ready: rules picked exactly the axial L4-L5 slices; both experts read every one of
    # them, plus hidden repeats, each read with its time
    l45 = {i for i in axial if truth[by_id[i].sop_instance_uid][-1] == "L4-L5"}
    shown = json.loads(_run("--db", str(db_path), "study", "show", "L4-L5 axial", "--as", "admin", "--json"))
    assert {by_id[i].sop_instance_uid for i in l45} == set(shown["slices"])
    stats = json.loads(_run("--db", str(db_path), "agreement", "--study", "L4-L5 axial", "--as", "reviewer",
                            "--json"))
    times = {r["reader"]: r for r in stats["reading_seconds"]}
    assert set(times) == {"rater:expert1", "rater:expert2"}
    assert all(r["n"] > len(l45) and 5 < r["median"] < 30 for r in times.values())  # first reads + repeats
    assert all(r["n"] >= 1 for r in stats["intra"])
    db.close()

    again = _run("demo", "--patients", "4", "--seed", "3", "--matrix", "128", "--db", str(db_path),
                 "--dicom-dir", str(tmp_path / "dicom"), "--if-missing")
    assert "already" in again

    _run("demo", "--patients", "4", "--seed", "3", "--matrix", "128", "--db", str(tmp_path / "b.db"),
         "--dicom-dir", str(tmp_path / "dicom2"), "--model", "none")

    def digest(folder: Path) -> dict[str, str]:
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*.dcm"))}

    assert digest(tmp_path / "dicom") == digest(tmp_path / "dicom2")
