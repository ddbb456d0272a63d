"""--precision: bf16 autocast only on a CUDA GPU with bfloat16, float32 (unchanged) on the CPU; in the card.

No GPU here: the decision is checked with ``torch.cuda.is_bf16_supported`` patched, and the autocast
path itself is exercised through the CPU's autocast (which the services never choose).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from annotator.domain.errors import InputError
from annotator.ml.config import load_preset
from annotator.ml.engine import Pipeline
from annotator.ml.runtime import Runtime, resolve_precision
from annotator.services import training
from tests.ml.ml_helpers import RATER, Project

TARGET = f"rater:{RATER}"
GPU = torch.device("cuda", 0)


def test_bf16_is_chosen_on_a_cuda_device_that_supports_it_only(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert [resolve_precision(r, GPU) for r in ("auto", None, "bf16", " BF16 ", "fp32")] == \
        ["bf16", "bf16", "bf16", "bf16", "none"]
    assert [resolve_precision(r, cpu) for r in ("auto", "fp32")] == ["none", "none"]
    with pytest.raises(InputError, match="not on the CPU"):
        resolve_precision("bf16", cpu)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a pre-Ampere GPU
    assert resolve_precision("auto", GPU) == "none"
    with pytest.raises(InputError, match=r"cuda:0 \(no bfloat16 support\)"):
        resolve_precision("bf16", GPU)
    with pytest.raises(InputError, match="use auto, bf16, fp32"):
        resolve_precision("fp16", cpu)


def test_the_cpu_path_is_unchanged_and_the_card_says_none(project: Project) -> None:
    auto = training.train(project.db, TARGET, preset=str(project.preset_file), epochs=2, seed=7, device="cpu")
    fp32 = training.train(project.db, TARGET, preset=str(project.preset_file), epochs=2, seed=7, device="cpu",
                          precision="fp32")
    assert auto.weights_sha256 == fp32.weights_sha256
    assert auto.card["mixed_precision"] == fp32.card["mixed_precision"] == "none"
    cv = training.cross_validate(project.db, TARGET, n_folds=2, preset=str(project.preset_file), epochs=1,
                                 device="cpu")
    assert cv.card["mixed_precision"] == "none"
    with pytest.raises(InputError, match="--precision bf16"):  # asked for explicitly: refused, nothing trained
        training.train(project.db, TARGET, preset=str(project.preset_file), epochs=1, device="cpu", precision="bf16")
    assert len(training.model_service.list_models(project.db)) == 3


@pytest.mark.parametrize("base", ["fast", "paper"])
def test_the_bf16_runtime_runs_the_forward_passes_in_bfloat16(project: Project, base: str) -> None:
    """Every training step of both networks under autocast: bfloat16 activations, float32 weights."""
    from tests.ml.ml_helpers import TINY_OVERRIDES

    preset = load_preset(base).with_overrides(**TINY_OVERRIDES).with_epochs(1)  # type: ignore[arg-type]
    preset = dataclasses.replace(preset, name=f"tiny-{base}")
    data = training.load_training_set(project.db, TARGET, preset)
    examples = data.examples[:6]
    mixed = Pipeline(preset, 4)
    dtypes: dict[int, set[torch.dtype]] = {}  # conv module -> output dtypes while training

    def hook(module: torch.nn.Module, args: object, out: object) -> None:
        if isinstance(module, torch.nn.Conv2d) and module.training and isinstance(out, torch.Tensor):
            dtypes.setdefault(id(module), set()).add(out.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        mixed.fit(examples, seed=2, runtime=Runtime(torch.device("cpu"), "bf16"))
    finally:
        handle.remove()
    for part in (mixed.localizer, mixed.classifier):  # the networks fit built and trained
        convs = [m for m in part.net.modules() if isinstance(m, torch.nn.Conv2d)]
        assert {d for m in convs for d in dtypes.get(id(m), set())} == {torch.bfloat16}, type(part).__name__
    weights = {k: v for k, v in mixed.state_tensors().items() if v.is_floating_point()}
    assert weights and all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights.values())
