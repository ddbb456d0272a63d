"""Presets, the registry folder rule, atomic publishing, folds; and that the service module stays torch-free."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from annotator.domain.errors import InputError, ModelIntegrityError, NotFound
from annotator.ml.config import available_presets, load_preset
from annotator.services import folds as fold_service
from annotator.services import models as model_service
from annotator.storage import catalog, models_repo
from annotator.storage.database import Database, open_database
from tests.factories import instance


def test_importing_the_training_service_does_not_load_torch() -> None:
    code = ("import sys, json, annotator.services.training, annotator.services.models, annotator.commands.ml,"
            " annotator.ml.config, annotator.ml.preprocess, annotator.ml.metrics;"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []


def test_presets_load_from_the_package_and_refuse_typos(tmp_path: Path) -> None:
    assert {"fast", "paper"} <= set(available_presets())
    fast, paper = load_preset("fast"), load_preset("paper")
    assert fast.localizer.arch == "unet" and fast.classifier.arch == "compact"
    assert paper.localizer.arch.startswith("fasterrcnn_") and paper.classifier.arch == "vgg11_bn"
    assert fast.with_epochs(3).train.epochs == 3 and fast.train.epochs != 3
    data = fast.to_dict()
    data["classifier"]["crop_pix"] = 64
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match="crop_pix"):
        load_preset(str(bad))
    with pytest.raises(NotFound, match="available: fast, paper"):
        load_preset("nope")


def test_models_dir_rule(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from annotator.storage.settings import resolve

    def models_dir(url: str) -> Path:
        return resolve(url).models_dir

    monkeypatch.delenv("ANNOTATOR_MODELS_DIR", raising=False)
    assert models_dir(f"sqlite:///{tmp_path}/site/proj.db") == tmp_path / "site" / "proj.models"
    assert models_dir(f"sqlite+pysqlite:///{tmp_path}/site/proj.db?timeout=5") == tmp_path / "site" / "proj.models"
    pg = models_dir("postgresql+psycopg://u@host/db")
    assert pg.name == "models" and pg.parent.name.lower() == "annotator"
    assert models_dir("sqlite://") == pg
    monkeypatch.setenv("ANNOTATOR_MODELS_DIR", str(tmp_path / "elsewhere"))
    assert models_dir(f"sqlite:///{tmp_path}/proj.db") == tmp_path / "elsewhere"


def test_publish_is_atomic_and_a_failed_registration_leaves_nothing(sqlite_db: Database,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    import torch

    # the models folder is a setting injected with the database, not read at publish time
    db = open_database(replace(sqlite_db.settings, models_dir=tmp_path / "registry"))
    card = {"preset": "fast", "target": "rater:a"}
    tensors = {"w": torch.arange(6, dtype=torch.float32)}

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(models_repo, "register", boom)
    with pytest.raises(RuntimeError):
        model_service.publish(db, tensors=tensors, card=card, kind="train")
    assert list((tmp_path / "registry").iterdir()) == []
    monkeypatch.undo()
    published = model_service.publish(db, tensors=tensors, card=card, kind="train")
    db.close()
    assert [p.name for p in (tmp_path / "registry").iterdir()] == [published.folder.name]
    assert sorted(p.name for p in published.folder.iterdir()) == ["card.json", "card.md", "model.safetensors"]
    from annotator.ml.registry import load_weights

    assert torch.equal(load_weights(published.version.weights_path, published.version.weights_sha256)["w"],
                       tensors["w"])
    with pytest.raises(ModelIntegrityError, match="expects 0+"):
        load_weights(published.version.weights_path, "0" * 64)


def _add_patients(db: Database, first: int, n: int) -> None:
    catalog.import_instances(db, [instance(0, patient=p) for p in range(first, first + n)])


def test_folds_are_assigned_once_and_survive_new_patients(sqlite_db: Database) -> None:
    _add_patients(sqlite_db, 0, 30)
    strata = {f"P{p:04d}": (3 if p < 3 else 0) for p in range(30)}  # three patients with a rare grade
    keys = {im.patient_key for im in catalog.images(sqlite_db)}
    assert keys == set(strata)
    first = fold_service.ensure_folds(sqlite_db, 10, seed=0, strata=strata)
    assert set(first) == keys and sorted(first.values()) == sorted(list(range(10)) * 3)
    rare = [k for k, s in strata.items() if s == 3]
    assert len({first[k] for k in rare}) == len(rare)  # the rare stratum is spread over folds
    again = fold_service.ensure_folds(sqlite_db, 10, seed=99, strata={})  # a later run: nothing changes
    assert again == first
    _add_patients(sqlite_db, 30, 7)
    grown = fold_service.ensure_folds(sqlite_db, 10, seed=5, strata={})
    assert {k: grown[k] for k in first} == first
    assert len(grown) == 37
    sizes = [list(grown.values()).count(f) for f in range(10)]
    assert max(sizes) - min(sizes) <= 1
    assert fold_service.ensure_folds(sqlite_db, 5, seed=0, strata={}) != {}  # another fold count: its own set
    assert models_repo.folds(sqlite_db, 10) == grown


def test_a_publish_removes_what_a_crashed_publish_left_but_not_a_running_one(sqlite_db: Database,
                                                                            tmp_path: Path) -> None:
    import os
    import time

    import torch

    from annotator.ml.registry import STALE_TEMP_S, TEMP_PREFIX

    registry = tmp_path / "registry"
    db = open_database(replace(sqlite_db.settings, models_dir=registry))
    crashed, running = registry / f"{TEMP_PREFIX}crashed", registry / f"{TEMP_PREFIX}running"
    for folder in (crashed, running):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"partial")
    old = time.time() - STALE_TEMP_S - 60
    for p in (crashed / "model.safetensors", crashed):
        os.utime(p, (old, old))
    os.utime(running, (old, old))  # an old folder whose weights file is still being written is not stale
    assert STALE_TEMP_S >= 5 * 60  # a publish running for a few minutes is never taken for a crashed one
    published = model_service.publish(db, tensors={"w": torch.zeros(2)}, card={"preset": "fast", "target": "t"},
                                      kind="train")
    db.close()
    assert not crashed.exists()
    assert (running / "model.safetensors").read_bytes() == b"partial"
    assert sorted(p.name for p in registry.iterdir()) == sorted([running.name, published.folder.name])
