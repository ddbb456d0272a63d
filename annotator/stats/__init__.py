"""Agreement statistics for multi-reader grading (numpy/scipy/sklearn/statsmodels only; no Qt, no DB).

Grades are ordinals of the project's scale, arrays aligned by slice, missing = ``MISSING`` (-1), NaN
or masked. Every result is a frozen dataclass with ``as_dict()`` for JSON (NaN -> None).
"""

from annotator.stats._inputs import MISSING, Categories, Grades
from annotator.stats.bootstrap import (
    METRICS,
    BootstrapDifference,
    BootstrapPair,
    DifferenceTest,
    Interval,
    bootstrap_difference,
    bootstrap_pair,
)
from annotator.stats.group import GroupStats, group
from annotator.stats.paired_tests import (
    McNemarResult,
    StuartMaxwellResult,
    mcnemar_vs_reference,
    stuart_maxwell,
)
from annotator.stats.pairwise import (
    BlandAltman,
    ClickOffsets,
    DistanceStats,
    KappaStat,
    PairStats,
    click_offsets,
    distance_stats,
    pairwise,
)

__all__ = [
    "METRICS",
    "MISSING",
    "BlandAltman",
    "BootstrapDifference",
    "BootstrapPair",
    "Categories",
    "ClickOffsets",
    "DifferenceTest",
    "DistanceStats",
    "Grades",
    "GroupStats",
    "Interval",
    "KappaStat",
    "McNemarResult",
    "PairStats",
    "StuartMaxwellResult",
    "bootstrap_difference",
    "bootstrap_pair",
    "click_offsets",
    "distance_stats",
    "group",
    "mcnemar_vs_reference",
    "pairwise",
    "stuart_maxwell",
]
