"""The wheel ships resources/ and migrations/, and the packaged code migrates a database from them."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_resources_and_migrations_and_they_work(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("annotator-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("annotator/resources/scales/lee.json", "annotator/resources/scales/schizas.json",
                     "annotator/migrations/env.py", "annotator/migrations/script.py.mako",
                     "annotator/migrations/versions/0001_initial_schema.py", "annotator/cli.py"):
        assert required in names, required
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "annotator = annotator.cli:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import annotator, sys; from annotator.storage.database import open_database;"
            "from annotator.storage import migrate; from annotator.domain.scales import load_scale;"
            f"db = open_database(r'{tmp_path / 'w.db'}');"
            "print(annotator.__file__, migrate.current_revision(db.engine), load_scale('schizas').label(3))")
    # -S: no .pth processing, so the editable install of this checkout cannot shadow the wheel's copy
    deps = sysconfig.get_paths()["purelib"]
    proc = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path,
                         env={"PYTHONPATH": f"{site}:{deps}", "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.split()
    from annotator.storage import migrate

    assert out[0].startswith(str(site)) and out[1] == migrate.head_revision() and out[2] == "D"  # every migration
