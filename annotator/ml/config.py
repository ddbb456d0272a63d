"""Model presets: architecture and hyper-parameters, loaded from JSON files shipped with the package.

A preset file (``resources/models/<name>.json``, packaged as ``annotator.resources/models``) fills the
dataclasses below; unknown or missing keys are refused with the file and key named, so a typo never
silently falls back to a default. The resolved preset is copied into every model card, so a model can
be rebuilt exactly even after the preset files change. No torch here: the CLI and the GUI read presets
without loading it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from annotator.domain.errors import InputError, NotFound

PRESET_PACKAGE = "annotator.resources"
PRESET_FOLDER = "models"
DEFAULT_PRESET = "fast"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LocalizerConfig:
    """Where the canal is: ``unet`` (heat map) or a torchvision Faster R-CNN (``fasterrcnn_*``)."""

    arch: str = "unet"
    field_mm: float = 256.0  # square overview centred on the image centre
    mm_per_px: float = 4.0
    width: int = 12  # channels of the first U-Net stage
    heatmap_sigma_px: float = 1.0
    box_mm: float = 40.0  # Faster R-CNN target: a fixed square around the labelled centre
    lr: float = 0.004
    weight_decay: float = 1e-4
    batch_size: int = 32
    translate_mm: float = 12.0  # augmentation: shift of the overview
    epochs_fraction: float = 1.0  # train the localizer in the first ceil(fraction * epochs) epochs only

    def epochs(self, total: int) -> int:
        return max(1, min(total, math.ceil(self.epochs_fraction * total)))

    @property
    def grid_px(self) -> int:
        return int(round(self.field_mm / self.mm_per_px))


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    """What grade: ``compact`` (small CNN with a centre-refinement head) or ``vgg11_bn``."""

    arch: str = "compact"
    crop_px: int = 64
    crop_mm_per_px: float = 0.625
    width: int = 16
    dropout: float = 0.2
    lr: float = 0.004
    weight_decay: float = 1e-4
    batch_size: int = 32
    offset_loss_weight: float = 0.25
    refine_steps: int = 2  # re-centre the crop on the refined point this many times at inference
    label_smoothing: float = 0.05
    tta_flip: bool = False  # inference: average the crop and its left-right mirror

    @property
    def crop_mm(self) -> float:
        return self.crop_px * self.crop_mm_per_px


@dataclass(frozen=True, slots=True)
class AugmentConfig:
    flip: bool = True  # left-right, the point flips with the image, the grade stays
    rotate_deg: float = 10.0
    scale: float = 0.08
    gamma: float = 0.25  # log-uniform gamma in exp(+-gamma)
    contrast: float = 0.12
    noise: float = 0.02
    jitter_mm: float = 6.0  # crop centre offsets: half the crops up to this far (refinement range) ...
    jitter_small_mm: float = 1.2  # ... half close to the point (sd), as at inference
    # another scanner (each off at 0, the default, so older presets make the batches they always made)
    bias: float = 0.0  # coil bias field: x exp(+-bias) at most, smooth over the image
    acquired_mm_min: float = 0.0  # crops as if acquired at a pitch uniform in [min, max] mm per pixel
    acquired_mm_max: float = 0.0
    fov_min_mm: float = 0.0  # overviews cut to a centred field of view between this and their own side
    invert: float = 0.0  # share of samples with MONOCHROME1 polarity (the importer normally undoes it)


@dataclass(frozen=True, slots=True)
class IntensityConfig:
    low_pct: float = 0.5  # percentile mapped to 0
    high_pct: float = 99.5  # percentile mapped to 1 (CSF is the brightest tissue on T2)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    epochs: int = 30
    class_weight_power: float = 0.5  # loss weight of a grade ~ (1 / prevalence) ** power
    balanced_sampling: bool = False
    threads: int = 1  # torch intra-op threads; part of the recipe (same seed + same threads -> same weights)


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    description: str = ""
    localizer: LocalizerConfig = field(default_factory=LocalizerConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    intensity: IntensityConfig = field(default_factory=IntensityConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "preset") -> Preset:
        sections = {"localizer": LocalizerConfig, "classifier": ClassifierConfig, "augment": AugmentConfig,
                    "intensity": IntensityConfig, "train": TrainConfig}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{source}: unknown key(s) {unknown} (known: {sorted(known)})")
        if "name" not in data:
            raise InputError(f"{source}: missing key 'name'")
        kwargs: dict[str, Any] = {"name": str(data["name"]), "description": str(data.get("description", ""))}
        for key, kind in sections.items():
            kwargs[key] = _section(kind, data.get(key, {}), f"{source}: {key}")
        preset = cls(**kwargs)
        preset.validate(source)
        return preset

    def validate(self, source: str = "preset") -> None:
        loc, cls_ = self.localizer, self.classifier
        if loc.arch != "unet" and not loc.arch.startswith("fasterrcnn_"):
            raise InputError(f"{source}: localizer.arch {loc.arch!r} must be 'unet' or 'fasterrcnn_<backbone>'")
        if cls_.arch not in ("compact", "vgg11_bn"):
            raise InputError(f"{source}: classifier.arch {cls_.arch!r} must be 'compact' or 'vgg11_bn'")
        if loc.grid_px < 16 or loc.grid_px % 8:
            raise InputError(f"{source}: localizer field_mm / mm_per_px must be a multiple of 8 and >= 16")
        if cls_.crop_px < 16 or cls_.crop_px % 8:
            raise InputError(f"{source}: classifier.crop_px must be a multiple of 8 and >= 16")
        if self.train.epochs < 1:
            raise InputError(f"{source}: train.epochs must be >= 1")
        if not 0.0 < loc.epochs_fraction <= 1.0:
            raise InputError(f"{source}: localizer.epochs_fraction must be in (0, 1]")
        aug = self.augment
        if aug.bias < 0 or aug.fov_min_mm < 0 or not 0.0 <= aug.invert <= 1.0:
            raise InputError(f"{source}: augment.bias and fov_min_mm must be >= 0, invert in [0, 1]")
        if not 0.0 <= aug.acquired_mm_min <= aug.acquired_mm_max or (0.0 == aug.acquired_mm_min < aug.acquired_mm_max):
            raise InputError(f"{source}: augment.acquired_mm_min must be > 0 and <= acquired_mm_max (both 0: off)")

    def with_epochs(self, epochs: int | None) -> Preset:
        if epochs is None:
            return self
        if epochs < 1:
            raise InputError(f"--epochs must be >= 1, got {epochs}")
        return dataclasses.replace(self, train=dataclasses.replace(self.train, epochs=int(epochs)))

    def with_threads(self, threads: int | None) -> Preset:
        if threads is None:
            return self
        if threads < 1:
            raise InputError(f"--threads must be >= 1, got {threads}")
        return dataclasses.replace(self, train=dataclasses.replace(self.train, threads=int(threads)))

    def with_overrides(self, **sections: dict[str, Any]) -> Preset:
        """A copy with some fields of some sections changed (tests and benchmarks shrink presets)."""
        changes: dict[str, Any] = {}
        for key, values in sections.items():
            current = getattr(self, key)
            merged = {**dataclasses.asdict(current), **values}
            changes[key] = _section(type(current), merged, f"override {key}")
        out = dataclasses.replace(self, **changes)
        out.validate("override")
        return out


def _section(kind: type[T], data: Any, source: str) -> T:
    if not isinstance(data, dict):
        raise InputError(f"{source}: must be an object")
    names = {f.name: f for f in fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise InputError(f"{source}: unknown key(s) {unknown} (known: {sorted(names)})")
    values: dict[str, Any] = {}
    for key, raw in data.items():
        default = getattr(kind(), key)
        try:
            if isinstance(default, bool):
                if not isinstance(raw, bool):
                    raise TypeError("expected true or false")
                values[key] = raw
            elif isinstance(default, int):
                if isinstance(raw, bool) or int(raw) != raw:
                    raise TypeError("expected an integer")
                values[key] = int(raw)
            elif isinstance(default, float):
                values[key] = float(raw)
            else:
                values[key] = str(raw)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{source}.{key}: {raw!r}: {exc}") from None
    return kind(**values)


def available_presets() -> tuple[str, ...]:
    folder = resources.files(PRESET_PACKAGE) / PRESET_FOLDER
    return tuple(sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")))


@cache
def load_preset(name_or_path: str = DEFAULT_PRESET) -> Preset:
    """A packaged preset by name (``fast``, ``paper``) or a preset JSON file by path."""
    if name_or_path.endswith(".json"):
        path = Path(name_or_path)
        if not path.is_file():
            raise NotFound(f"preset file {path} does not exist")
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        res = resources.files(PRESET_PACKAGE) / PRESET_FOLDER / f"{name_or_path}.json"
        if not res.is_file():
            raise NotFound(f"model preset {name_or_path!r} is unknown (available: {', '.join(available_presets())})")
        text, source = res.read_text(encoding="utf-8"), f"resources/models/{name_or_path}.json"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{source}: must hold one JSON object")
    return Preset.from_dict(data, source)
