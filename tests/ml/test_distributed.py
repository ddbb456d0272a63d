"""``annotator train --distributed`` under torchrun: two gloo ranks on the CPU train one model.

The launch test runs the real command (``python -m torch.distributed.run --standalone
--nproc_per_node=2 -m annotator ... train --distributed``) on the tiny phantom project and checks that
exactly one model is published, by rank 0 alone (one stream of progress events), that each epoch's
shards (logged by every rank through ANNOTATOR_SHARD_LOG) are disjoint and together cover the
training set, and that the model's quality on the phantom against its truth is within a stated
tolerance of a single-process run with the same preset, epochs and seed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from annotator.cli import main
from annotator.domain.errors import InputError
from annotator.domain.events import Done, EpochEnded, ModelSaved, decode
from annotator.imaging.phantom_dicom import read_truth
from annotator.ml.config import Preset
from annotator.ml.distributed import SHARD_LOG_VAR, Launch, device_for
from annotator.ml.runtime import Runtime
from annotator.services import distributed_training, training
from annotator.storage import catalog, models_repo
from tests.ml.ml_helpers import RATER, Project, cli_env

TARGET = f"rater:{RATER}"
REPO = Path(__file__).resolve().parents[2]
EPOCHS = 8
# Two ranks split each global batch and draw other augmentations, so the weights differ from one
# process's; on this easy task both must land close: grade accuracy within 0.10 (3 of 32 slices) and
# median centre error within 1.0 mm of the single-process model's, both against the phantom's truth.
ACCURACY_TOLERANCE = 0.10
CENTRE_TOLERANCE_MM = 1.0


def _quality(project: Project, model_id: int) -> tuple[float, float]:
    """(grade accuracy, median centre error in mm) of the model's predictions against the phantom truth."""
    truth = {t.sop_instance_uid: t for t in read_truth(project.dicom)}
    images = {im.id: im for im in catalog.images(project.db)}
    right, errors = [], []
    for p in models_repo.predictions(project.db, model_id):
        im = images[p.image_id]
        t = truth[im.sop_instance_uid]
        assert im.geometry.pixel_spacing is not None and p.x_px is not None and p.y_px is not None
        row_mm, col_mm = im.geometry.pixel_spacing
        right.append(p.grade == t.stage)
        errors.append(float(np.hypot((p.x_px - t.x_px) * col_mm, (p.y_px - t.y_px) * row_mm)))
    assert len(right) == 32
    return float(np.mean(right)), float(np.median(errors))


def test_two_gloo_ranks_publish_one_model_from_disjoint_shards(project: Project, tmp_path: Path) -> None:
    single = training.train(project.db, TARGET, preset=str(project.preset_file), epochs=EPOCHS, seed=1,
                            device="cpu", predict_all=True)
    shards = tmp_path / "shards"
    env = {**cli_env(), SHARD_LOG_VAR: str(shards), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "annotator", "--db", project.url, "train", "--target", TARGET, "--preset", str(project.preset_file),
         "--epochs", str(EPOCHS), "--seed", "1", "--device", "cpu", "--distributed", "--predict", "--json-progress"],
        capture_output=True, text=True, timeout=240, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # one model more, published once: rank 0 alone reports (one stream of events, one "done")
    versions = models_repo.list_versions(project.db)
    assert len(versions) == 2 and versions[0].id == single.id
    dist = versions[1]
    events = [decode(line) for line in proc.stdout.splitlines()]
    assert [e.epoch for e in events if isinstance(e, EpochEnded)] == list(range(1, EPOCHS + 1))
    assert [e.model_id for e in events if isinstance(e, (ModelSaved, Done))] == [dist.id, dist.id]
    assert sorted(p.name for p in project.registry.iterdir()) == sorted(Path(v.weights_path).parent.name
                                                                        for v in versions)
    card = dist.card
    assert card["distributed"]["world_size"] == 2 and card["distributed"]["backend"] == "gloo"
    assert card["distributed"]["batch_size_per_rank"] == {"localizer": 2, "classifier": 2}  # tiny preset: 4
    assert card["mixed_precision"] == "none" and card["device"] == "cpu"

    # every draw (an epoch of the localizer or the classifier): disjoint halves covering the training set
    logs = [[json.loads(line) for line in (shards / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    train_ids = {im.id for im in catalog.images(project.db)}
    assert len(logs[0]) == len(logs[1]) == EPOCHS // 2 + EPOCHS  # the tiny fast localizer trains half the epochs
    for a, b in zip(*logs, strict=True):
        assert (a["rank"], b["rank"], a["draw"]) == (0, 1, b["draw"])
        assert len(a["keys"]) == len(b["keys"]) == 16 and not set(a["keys"]) & set(b["keys"])
        assert set(a["keys"]) | set(b["keys"]) == train_ids
    assert len({tuple(d["keys"]) for d in logs[0]}) == len(logs[0])  # a new shuffle each draw

    acc_1, centre_1 = _quality(project, single.id)
    acc_2, centre_2 = _quality(project, dist.id)
    print(f"single process: accuracy {acc_1:.3f}, centre median {centre_1:.2f} mm; "
          f"2 ranks: accuracy {acc_2:.3f}, centre median {centre_2:.2f} mm")
    assert acc_2 >= acc_1 - ACCURACY_TOLERANCE, (acc_1, acc_2)
    assert centre_2 <= centre_1 + CENTRE_TOLERANCE_MM, (centre_1, centre_2)


def test_shards_are_disjoint_and_even_when_the_count_does_not_divide() -> None:
    """The sampler's order with no process group: 3 ranks over 10 examples (padded by 2), weighted too."""
    keys = list(range(100, 110))
    for weights in (None, torch.ones(10, dtype=torch.float64)):
        runs = [Runtime(rank=r, world=3, seed=5) for r in range(3)]
        for _ in range(2):
            parts = [run.order(keys, torch.Generator().manual_seed(r), weights).tolist() for r, run in enumerate(runs)]
            assert [len(p) for p in parts] == [4, 4, 4]
            flat = [i for p in parts for i in p]
            if weights is None:  # a permutation split three ways: every example, two repeated to even out
                assert set(flat) == set(range(10)) and len(flat) - len(set(flat)) == 2
    one = Runtime()
    assert one.batch_size(32) == 32 and Runtime(world=2).batch_size(32) == 16 and Runtime(world=8).batch_size(4) == 2
    assert one.order(keys, torch.Generator().manual_seed(3)).tolist() == \
        torch.randperm(10, generator=torch.Generator().manual_seed(3)).tolist()  # one process: unchanged


def test_distributed_without_torchrun_is_one_line_and_publishes_nothing(project: Project,
                                                                       capsys: pytest.CaptureFixture[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(InputError, match="start the command with torchrun"):
        distributed_training.train_distributed(project.db, TARGET, preset=str(project.preset_file), epochs=1)
    code = main(["--db", project.url, "train", "--target", TARGET, "--preset", str(project.preset_file),
                 "--distributed"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("annotator: error: --distributed: start the command with torchrun")
    assert err.splitlines() == [err]
    assert models_repo.list_versions(project.db) == []


def test_launch_environment_and_device() -> None:
    launch = Launch.from_environ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", SHARD_LOG_VAR: "/tmp/s"})
    assert (launch.rank, launch.world_size, launch.local_rank) == (3, 4, 1)
    assert launch.shard_log == Path("/tmp/s/rank3.jsonl")
    with pytest.raises(InputError, match="does not fit WORLD_SIZE"):
        Launch.from_environ({"RANK": "4", "WORLD_SIZE": "4", "LOCAL_RANK": "0"})
    assert device_for(launch, "cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="takes the GPU of its LOCAL_RANK"):
        device_for(launch, "cuda:1")
    if not torch.cuda.is_available():
        assert device_for(launch, "auto") == torch.device("cpu")
    assert os.environ.get(SHARD_LOG_VAR) is None  # the debug log is never on by default


def test_sync_batch_norm_goes_back_to_plain_batch_norm_with_the_same_tensors() -> None:
    """On GPUs the ranks train SyncBatchNorm; the published network is the plain one, same tensors."""
    from annotator.ml.nets import CropNet
    from annotator.ml.paper import build_vgg
    from annotator.ml.runtime import revert_sync_batchnorm
    from tests.ml.ml_helpers import tiny_preset_dict

    for net in (CropNet(4, 8), build_vgg(Preset.from_dict(tiny_preset_dict("paper")), 4)):
        before = {k: v.data_ptr() for k, v in net.state_dict().items()}
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in net.modules())
        revert_sync_batchnorm(net)
        assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in net.modules())
        assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) > 0
        assert {k: v.data_ptr() for k, v in net.state_dict().items()} == before
    assert not Runtime(world=2).sync_batch_norm and Runtime(torch.device("cuda", 0), world=2).sync_batch_norm
