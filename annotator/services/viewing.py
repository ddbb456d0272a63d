"""Use case: show one slice — its pixels, display windows, and what else the rater may see on it.

Pixels are decoded with :func:`annotator.imaging.dicom_io.load_slice` (safe to call from a worker
thread). The overlays (other readers' labels, the active model's suggestion) obey the project's
rule book (:class:`annotator.domain.policy.Policy`) here, in the service, so no widget can show what the
rater may not see: other readers need ``may_see_other_readers``, the model's suggestion on a slice
``model_withheld(own_graded)`` to be None.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass, field, replace

import numpy as np

from annotator.domain.entities import ImageRef, Label, ModelVersion, Prediction, Rater
from annotator.domain.errors import InputError
from annotator.domain.policy import Policy, reader_names
from annotator.services.labelling import LabelService
from annotator.storage import models_repo, people
from annotator.storage.database import Database

AUTO_PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True, slots=True)
class Window:
    """A display window: values below ``center - width/2`` are black, above ``center + width/2`` white."""

    center: float
    width: float

    @property
    def levels(self) -> tuple[float, float]:
        return self.center - self.width / 2.0, self.center + self.width / 2.0

    @staticmethod
    def from_levels(lo: float, hi: float) -> Window:
        return Window((lo + hi) / 2.0, max(hi - lo, 1e-6))


@dataclass(frozen=True, slots=True)
class DecodedSlice:
    """Pixels ready to display (float32, rows x columns) and the windows that suit them."""

    image: ImageRef
    pixels: np.ndarray
    default_window: Window
    default_source: str  # "DICOM" or "auto": where the default window came from
    presets: dict[str, Window] = field(default_factory=dict)
    inverted: bool = False  # MONOCHROME1: show the lowest value white (the values themselves are not changed)

    @property
    def nbytes(self) -> int:
        return int(self.pixels.nbytes)


def _percentile_window(pixels: np.ndarray, lo: float, hi: float) -> Window:
    sample = pixels[::2, ::2] if pixels.size > 65536 else pixels
    a, b = np.percentile(sample, [lo, hi])
    return Window.from_levels(float(a), float(b) if b > a else float(a) + 1.0)


def window_presets(image: ImageRef, pixels: np.ndarray) -> tuple[Window, str, dict[str, Window]]:
    """(default window, its source, named presets). The DICOM window wins; else percentiles."""
    presets: dict[str, Window] = {}
    if image.window_center is not None and image.window_width is not None and image.window_width > 0:
        presets["DICOM"] = Window(float(image.window_center), float(image.window_width))
    presets["Auto 1–99 %"] = _percentile_window(pixels, *AUTO_PERCENTILES)
    presets["High contrast 10–90 %"] = _percentile_window(pixels, 10.0, 90.0)
    lo, hi = float(pixels.min()), float(pixels.max())
    presets["Full range"] = Window.from_levels(lo, hi if hi > lo else lo + 1.0)
    if "DICOM" in presets:
        return presets["DICOM"], "DICOM", presets
    return presets["Auto 1–99 %"], "auto", presets


def decode_slice(image: ImageRef) -> DecodedSlice:
    """Read and prepare one slice for display. Slow (file I/O, decompression): call off the GUI thread."""
    from annotator.imaging.dicom_io import load_slice

    loaded = load_slice(image.path)
    pixels = np.ascontiguousarray(loaded.pixels, dtype=np.float32)
    if pixels.ndim != 2:
        raise InputError(f"{image.path}: expected one 2-D frame, got an array of shape {pixels.shape}")
    g = image.geometry
    if pixels.shape != (g.rows, g.columns):
        raise InputError(f"{image.path}: pixel array is {pixels.shape[0]}x{pixels.shape[1]} but the catalogue "
                         f"says {g.rows}x{g.columns}; re-import the file")
    window, source, presets = window_presets(image, pixels)
    return DecodedSlice(image=image, pixels=pixels, default_window=window, default_source=source, presets=presets,
                        inverted=loaded.monochrome1)


class SuggestionStatus(enum.StrEnum):
    SHOWN = "shown"
    NO_MODEL = "no active model"
    HIDDEN = "model suggestion hidden by project policy"
    AFTER_GRADE = "model suggestion appears after you grade this slice"
    NOT_PREDICTED = "the active model has not predicted this slice"


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The active model's suggestion on a slice, or why there is none to show."""

    status: SuggestionStatus
    model: ModelVersion | None = None
    prediction: Prediction | None = None  # set only when status is SHOWN


@dataclass(frozen=True, slots=True)
class OtherReader:
    rater: Rater  # the real rater (references and styles key on her); show ``name``
    label: Label
    ordinal: int = 0  # the rater's position among the project's raters by id (picks a distinct style)
    name: str = ""  # how the viewer sees her: her name, or an alias where the project hides names

    @property
    def shown(self) -> str:
        return self.name or self.rater.name


@dataclass(frozen=True, slots=True)
class SliceOverlays:
    """Everything besides pixels that the signed-in rater may see on one slice."""

    image_id: int
    own: Label | None
    others: tuple[OtherReader, ...]
    others_visible: bool  # False: blinded, other readers are not shown to this rater
    suggestion: Suggestion
    rules: Policy  # the rule book these overlays obey (the rater's role and the project's settings)
    model_label: str = ""  # how to name the active model to this rater ("" = no active model)


def suggestion_allowed(rules: Policy, own: Label | None) -> SuggestionStatus | None:
    """None when the rater may see the model's suggestion now, else the reason it is withheld."""
    withheld = rules.model_withheld(own_graded=own is not None and own.has_grade)
    return None if withheld is None else SuggestionStatus(withheld.value)


@dataclass
class ViewingService:
    db: Database
    rater: Rater

    def active_model(self) -> ModelVersion | None:
        return models_repo.active(self.db)

    def overlays(self, image_ids: Collection[int]) -> dict[int, SliceOverlays]:
        """Overlays for several slices at once (a whole series when it opens), in a handful of queries."""
        ids = list(image_ids)
        if not ids:
            return {}
        settings = people.get_settings(self.db)
        labelling = LabelService(self.db, self.rater)
        own = {lab.image_id: lab for lab in labelling.my_labels(ids)}
        rules = Policy.of(self.rater, settings)
        others_visible = rules.may_see_other_readers
        others: dict[int, list[OtherReader]] = {}
        if others_visible:
            raters = {r.id: r for r in people.list_raters(self.db)}
            names = reader_names(rules, raters.values())
            ordinal = {rid: i for i, rid in enumerate(sorted(raters))}
            for lab in labelling.visible_labels(ids):
                if lab.rater_id != self.rater.id and lab.rater_id in raters:
                    rater = raters[lab.rater_id]
                    others.setdefault(lab.image_id, []).append(
                        OtherReader(rater, lab, ordinal[lab.rater_id], names.name(rater.name)))
        model = self.active_model()
        preds = models_repo.predictions_by_image(self.db, model.id, ids) if model is not None else {}
        model_label = "" if model is None else (
            model.name if rules.may_see_model_details(model.target)
            else f"model {model.id}")  # its name says whose labels it learnt from: not for a blinded reader
        out = {}
        for image_id in ids:
            mine = own.get(image_id)
            out[image_id] = SliceOverlays(
                image_id=image_id, own=mine,
                others=tuple(sorted(others.get(image_id, ()), key=lambda r: r.ordinal)),  # never by name
                others_visible=others_visible,
                suggestion=self._suggestion(model, preds.get(image_id), rules, mine),
                rules=rules, model_label=model_label)
        return out

    def with_own(self, ov: SliceOverlays, own: Label | None) -> SliceOverlays:
        """The same overlays after the rater's own label changed (to ``own``), with few or no queries.

        Other readers are unchanged by the rater's action; the suggestion is re-decided under the
        same rules and the prediction fetched only when it becomes visible.
        """
        own = own if own is not None and not own.empty else None
        model = ov.suggestion.model
        if model is None:
            suggestion = ov.suggestion  # no active model
        elif (withheld := suggestion_allowed(ov.rules, own)) is not None:
            suggestion = Suggestion(withheld, model=model)
        elif ov.suggestion.status in (SuggestionStatus.SHOWN, SuggestionStatus.NOT_PREDICTED):
            suggestion = ov.suggestion
        else:
            pred = models_repo.predictions_by_image(self.db, model.id, [ov.image_id]).get(ov.image_id)
            suggestion = self._suggestion(model, pred, ov.rules, own)
        return replace(ov, own=own, suggestion=suggestion)

    def overlay(self, image_id: int) -> SliceOverlays:
        return self.overlays([image_id])[image_id]

    def _suggestion(self, model: ModelVersion | None, pred: Prediction | None, rules: Policy,
                    own: Label | None) -> Suggestion:
        if model is None:
            return Suggestion(SuggestionStatus.NO_MODEL)
        withheld = suggestion_allowed(rules, own)
        if withheld is not None:
            return Suggestion(withheld, model=model)
        if pred is None:
            return Suggestion(SuggestionStatus.NOT_PREDICTED, model=model)
        return Suggestion(SuggestionStatus.SHOWN, model=model, prediction=pred)
