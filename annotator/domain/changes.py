"""What another workstation (or process) may have changed in the shared project database.

A :class:`ChangeKind` names a family of rows; the storage layer's change watcher reports the kinds
committed since it last reported, and the screens re-read what depends on them.
"""

from __future__ import annotations

from enum import StrEnum


class ChangeKind(StrEnum):
    LABELS = "labels"  # a rater's label version
    ADJUDICATIONS = "adjudications"  # a reviewer's decision
    READS = "reads"  # an answer in a reader study
    PREDICTIONS = "predictions"  # a model's predictions
    MODELS = "models"  # a model version registered or activated
    CATALOGUE = "catalogue"  # slices imported, or their vertebral level set
    SETTINGS = "settings"  # the project's rules

    @classmethod
    def every(cls) -> frozenset[ChangeKind]:
        """All kinds: what to assume when the watcher cannot tell what changed."""
        return frozenset(cls)
