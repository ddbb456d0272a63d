"""--device: auto/cpu/cuda[:N] resolution, a clear error without CUDA, CPU determinism kept, device in the card.

These run on a CPU-only machine; where torch sees a GPU, ``torch.cuda.is_available`` is patched so the
tests check the same thing (what a CPU-only machine does).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from annotator.cli import main
from annotator.domain.errors import InputError
from annotator.ml.device import describe_device, resolve_device
from annotator.services import models as model_service
from annotator.services import training
from annotator.storage import models_repo
from tests.ml.ml_helpers import RATER, Project

TARGET = f"rater:{RATER}"


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_one_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "Fake GPU")


@pytest.mark.usefixtures("no_cuda")
def test_resolution_without_cuda() -> None:
    assert resolve_device("auto") == resolve_device(None) == resolve_device(" CPU ") == torch.device("cpu")
    assert describe_device(resolve_device("auto")) == "cpu"
    for spec in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(InputError) as err:
            resolve_device(spec)
        message = str(err.value)
        assert message.startswith(f"--device {spec}: no CUDA device available (torch {torch.__version__} ")
        assert "\n" not in message
    for spec in ("gpu", "cuda:x", "mps", "cuda:"):
        with pytest.raises(InputError, match="use auto, cpu, cuda or cuda:N"):
            resolve_device(spec)


@pytest.mark.usefixtures("fake_one_gpu")
def test_resolution_with_a_gpu() -> None:
    assert resolve_device("auto") == resolve_device("cuda") == resolve_device("cuda:0") == torch.device("cuda", 0)
    assert resolve_device("cpu") == torch.device("cpu")
    assert describe_device(torch.device("cuda", 0)) == "cuda:0 (Fake GPU)"
    with pytest.raises(InputError, match=r"--device cuda:1: torch sees 1 CUDA device\(s\), cuda:0 to cuda:0"):
        resolve_device("cuda:1")


@pytest.mark.usefixtures("no_cuda")
def test_cuda_without_a_gpu_is_one_line_and_publishes_nothing(project: Project,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match="no CUDA device available"):
        training.train(project.db, TARGET, preset=str(project.preset_file), epochs=1, device="cuda")
    with pytest.raises(InputError, match="no CUDA device available"):
        training.cross_validate(project.db, TARGET, n_folds=2, preset=str(project.preset_file), epochs=1,
                                device="cuda")
    with pytest.raises(InputError, match="no CUDA device available"):  # before looking for a model
        training.predict(project.db, device="cuda")
    base = ["--db", project.url]
    for args in (["train", "--target", TARGET, "--preset", str(project.preset_file), "--epochs", "1"],
                 ["cv", "--target", TARGET, "--preset", str(project.preset_file), "--folds", "2"],
                 ["predict"]):
        assert main([*base, *args, "--device", "cuda"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("annotator: error: --device cuda: no CUDA device available (torch ")
        assert err.strip().splitlines() == [err.strip()]
    assert models_repo.list_versions(project.db) == []
    assert models_repo.folds(project.db, 2) == {}
    assert not project.registry.exists() or list(project.registry.iterdir()) == []


@pytest.mark.usefixtures("no_cuda")
def test_cpu_is_auto_on_a_cpu_only_machine_and_the_card_says_so(project: Project) -> None:
    det_before, bench_before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    a = training.train(project.db, TARGET, preset=str(project.preset_file), epochs=2, seed=7, device="cpu")
    b = training.train(project.db, TARGET, preset=str(project.preset_file), epochs=2, seed=7)  # auto
    assert a.weights_sha256 == b.weights_sha256
    assert a.card["device"] == b.card["device"] == "cpu"
    assert "| trained on | cpu " in (Path(a.weights_path).parent / "card.md").read_text()
    assert torch.are_deterministic_algorithms_enabled() == det_before
    assert torch.backends.cudnn.benchmark == bench_before
    # a model read back onto the CPU: the same weights, and it predicts every slice
    pipeline = model_service.load_pipeline(project.db, a).to("cpu")
    from annotator.ml.registry import load_weights, tensors_sha256

    assert pipeline.device == torch.device("cpu")
    assert all(t.device.type == "cpu" for t in pipeline.state_tensors().values())
    assert tensors_sha256(pipeline.state_tensors()) == tensors_sha256(load_weights(a.weights_path, a.weights_sha256))
    _, n, skipped = training.predict(project.db, a.id, device="cpu")
    assert n == 32 and skipped == 0
    assert len(models_repo.predictions(project.db, a.id)) == 32
