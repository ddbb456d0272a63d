"""2,000 fuzzed files (benchmarks/import_fuzz.py) through the real importer into a real database (about 20-30 s)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.filterwarnings("ignore")

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def fuzz(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the benchmark and its mutations module, as scripts see them
    return importlib.import_module("import_fuzz")


@pytest.mark.slow
def test_two_thousand_fuzzed_files_import_or_reject_cleanly(fuzz: ModuleType, tmp_path: Path) -> None:
    report = fuzz.run(2000, seed=2026, jobs=1, folder=tmp_path, hang_s=30.0)
    fuzz.print_report(report, 2026, 1)
    assert report.cases == 2000
    assert report.crashes == [] and report.hangs == []
    assert report.problems == []  # nothing partial, no orphans, no impossible geometry stored
    assert report.over_target == 0, report.slowest  # no file took more than 2 s of CPU to import
    assert sum(report.statuses.values()) == 2000
    assert report.statuses["imported"] > 100 and report.statuses["rejected"] > 1000
    assert report.statuses["skipped"] > 0  # re-encoded or duplicate instances were met, not rejected
    assert report.images == report.statuses["imported"]
    assert any(r.startswith("imported: mm unavailable: PixelSpacing") for r in report.reasons)


def test_cases_are_reproducible_from_seed_and_number(fuzz: ModuleType) -> None:
    corpus = fuzz.load_corpus()
    assert fuzz.make_case(corpus, 7, 123) == fuzz.make_case(corpus, 7, 123)
    assert fuzz.make_case(corpus, 7, 123)[0] != fuzz.make_case(corpus, 7, 124)[0]


@pytest.mark.slow
def test_harness_counts_hangs_deaths_and_escaped_exceptions(fuzz: ModuleType, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A fuzz run that could not see a hang or a crash would prove nothing: make three and count them."""
    monkeypatch.setenv(fuzz.SELFTEST, "hang=3,die=6,raise=8")
    report = fuzz.run(12, seed=1, jobs=1, folder=tmp_path, hang_s=3.0)
    assert [h.split(":")[0] for h in report.hangs] == ["case 3"]
    assert sorted(c.split(" (")[0].split(":")[0] for c in report.crashes) == ["case 6", "case 8"]
    assert "worker died (exit status 3)" in " ".join(report.crashes)
    assert "RuntimeError: selftest" in " ".join(report.crashes)
    assert report.cases == 12 - 2  # the hung and the dead case never reported; the others all did
    assert not report.ok
