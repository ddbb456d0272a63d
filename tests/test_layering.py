"""The layers of architecture.md hold: Qt only in gui, torch only in ml, SQLAlchemy only in storage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold() -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 4 kept, 0 broken" in proc.stdout


def test_cli_and_core_do_not_load_qt_or_torch_at_run_time() -> None:
    code = (
        "import sys, json, annotator.cli, annotator.services.importing, annotator.services.labelling;"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('PySide6', 'pyqtgraph', 'torch', 'torchvision'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []


def test_domain_has_no_third_party_imports() -> None:
    code = (
        "import sys, json; before = set(sys.modules);"
        "import annotator.domain.entities, annotator.domain.scales, annotator.domain.geometry,"
        " annotator.domain.errors, annotator.domain.progress, annotator.domain.policy, annotator.domain.events,"
        " annotator.domain.settings, annotator.domain.readers;"
        "new = {m.split('.')[0] for m in set(sys.modules) - before};"
        "print(json.dumps(sorted(new - set(sys.stdlib_module_names) - {'annotator'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []
