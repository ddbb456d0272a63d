"""Components of the ``fast`` preset: heat-map localizer and compact crop classifier (train + infer).

Each component owns its network, optimiser and schedule and exposes one epoch of training over
prepared examples and a batched inference call; ``engine`` strings them into a pipeline. Networks,
optimiser state and loss weights live on the component's ``device``; batches are cut and augmented on
the CPU (one CPU generator, so the same data on every device) and moved there. The
classifier trains on crops around the labelled point with jitter (half far, to learn to re-centre, half
near, as at inference) and a class-weighted loss for the skewed grade prevalence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from annotator.ml import augment
from annotator.ml.config import Preset
from annotator.ml.device import CPU, to_device
from annotator.ml.nets import CropNet, LocNet, heatmap_loss, local_peak, soft_argmax
from annotator.ml.preprocess import Example
from annotator.ml.runtime import Runtime

StopCheck = Callable[[], None]  # raises Cancelled when the user asked to stop
HEAT_STRIDE = 2  # overview pixels per localizer heat-map cell


def batches(order: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Index batches; a last batch of one sample is merged into the previous one (BatchNorm needs 2)."""
    out = list(torch.split(order, size))
    if len(out) > 1 and len(out[-1]) < 2:
        out[-2] = torch.cat([out[-2], out.pop()])
    return out


def make_optimiser(module: nn.Module, lr: float, weight_decay: float, total_steps: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total_steps, 2), pct_start=0.15,
                                                div_factor=10.0, final_div_factor=100.0)
    return opt, sched


def steps_per_epoch(n: int, batch_size: int, run: Runtime | None = None) -> int:
    """Optimiser steps in one pass over ``n`` examples (on each rank, in data-parallel training)."""
    run = run or Runtime()
    return len(batches(torch.arange(run.shard_size(n)), run.batch_size(batch_size))) if n else 0


def class_weights(grades: Sequence[int], n_classes: int, power: float) -> torch.Tensor:
    """Loss weights ~ (1 / prevalence) ** power, mean 1 over the samples; absent grades get weight 1."""
    counts = np.bincount(np.asarray(grades, dtype=np.int64), minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** power, 1.0)
    w = w / max((w * counts).sum() / max(counts.sum(), 1), 1e-9)
    return torch.tensor(w, dtype=torch.float32)


class HeatmapLocalizer:
    """U-Net on the overview; the point is the sub-pixel peak of its (half-resolution) heat map."""

    def __init__(self, preset: Preset, device: torch.device = CPU) -> None:
        self.preset = preset
        self.device = device
        self.net = LocNet(preset.localizer.width).to(device)
        self.run = Runtime(device)
        self.train_net: nn.Module = self.net

    def setup(self, n_train: int, epochs: int, run: Runtime) -> None:
        cfg = self.preset.localizer
        self.run = run
        self.train_net = run.prepare(self.net)
        self.opt, self.sched = make_optimiser(self.net, cfg.lr, cfg.weight_decay,
                                              epochs * steps_per_epoch(n_train, cfg.batch_size, run))

    def train_epoch(self, examples: Sequence[Example], gen: torch.Generator, check: StopCheck) -> float:
        cfg, aug, run = self.preset.localizer, self.preset.augment, self.run
        self.train_net.train()
        images = torch.from_numpy(np.stack([e.overview for e in examples]))[:, None]
        points = torch.tensor([e.overview_point for e in examples], dtype=torch.float32)
        total, seen = 0.0, 0
        for idx in batches(run.order([e.key for e in examples], gen), run.batch_size(cfg.batch_size)):
            check()
            x, p = augment.augment_overview(images[idx], points[idx], aug, cfg.translate_mm, cfg.mm_per_px, gen)
            x, p = to_device(x, self.device), to_device(p, self.device)
            with run.autocast():
                loss = heatmap_loss(self.train_net(x).float(), p / HEAT_STRIDE, cfg.heatmap_sigma_px)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        total, seen_all = run.sums(total, seen)
        return total / max(seen_all, 1)

    @torch.no_grad()
    def locate(self, overviews: torch.Tensor) -> torch.Tensor:
        """[B,1,n,n] -> [B,2] overview pixels (x, y)."""
        self.net.eval()
        return local_peak(self.net(overviews), radius=2) * HEAT_STRIDE

    def modules(self) -> dict[str, nn.Module]:
        return {"localizer": self.net}


def center_crops(context: torch.Tensor, crop_px: int) -> torch.Tensor:
    """The crop centred on the labelled point, cut straight out of the context squares."""
    a = (context.shape[-1] - crop_px) // 2
    return context[..., a:a + crop_px, a:a + crop_px]


class CompactClassifier:
    """Compact CNN on a canal-centred crop: grade probabilities and the centre's offset in mm."""

    def __init__(self, preset: Preset, n_classes: int, device: torch.device = CPU) -> None:
        cfg = preset.classifier
        self.preset = preset
        self.n_classes = n_classes
        self.device = device
        self.net = CropNet(n_classes, cfg.width, cfg.dropout).to(device)
        self.heat_px = cfg.crop_px // 4
        self.run = Runtime(device)
        self.train_net: nn.Module = self.net

    def setup(self, train: Sequence[Example], epochs: int, run: Runtime) -> None:
        cfg, tr = self.preset.classifier, self.preset.train
        self.run = run
        # without the offset loss the centre head gets no gradient: DDP must be told
        self.train_net = run.prepare(self.net, find_unused=cfg.offset_loss_weight <= 0)
        self.opt, self.sched = make_optimiser(self.net, cfg.lr, cfg.weight_decay,
                                              epochs * steps_per_epoch(len(train), cfg.batch_size, run))
        grades = [e.grade for e in train]
        self.weights = class_weights(grades, self.n_classes, 0.0 if tr.balanced_sampling else tr.class_weight_power
                                     ).to(self.device)
        counts = np.bincount(np.asarray(grades, dtype=np.int64), minlength=self.n_classes)
        # on the CPU, for the CPU generator
        self.sample_w = torch.tensor(1.0 / np.maximum(counts, 1), dtype=torch.float64)[torch.tensor(grades)]

    def _mm_to_heat(self, offset_mm: torch.Tensor) -> torch.Tensor:
        cfg = self.preset.classifier
        crop = offset_mm / cfg.crop_mm_per_px + (cfg.crop_px - 1) / 2.0
        return (crop - 1.5) / 4.0

    def _heat_to_mm(self, heat_px: torch.Tensor) -> torch.Tensor:
        cfg = self.preset.classifier
        crop = heat_px * 4.0 + 1.5
        return (crop - (cfg.crop_px - 1) / 2.0) * cfg.crop_mm_per_px

    def train_epoch(self, examples: Sequence[Example], gen: torch.Generator, check: StopCheck
                    ) -> tuple[float, float]:
        cfg, aug, run = self.preset.classifier, self.preset.augment, self.run
        self.train_net.train()
        context = torch.from_numpy(np.stack([e.context for e in examples]))[:, None]
        grades = torch.tensor([e.grade for e in examples])
        order = run.order([e.key for e in examples], gen,
                          self.sample_w if self.preset.train.balanced_sampling else None)
        total, right, seen = 0.0, 0, 0
        for idx in batches(order, run.batch_size(cfg.batch_size)):
            check()
            x, offset = augment.augment_crops(context[idx], aug, cfg.crop_px, cfg.crop_mm_per_px, gen)
            x, offset, y = (to_device(t, self.device) for t in (x, offset, grades[idx]))
            with run.autocast():
                logits, heat = self.train_net(x)
                logits, heat = logits.float(), heat.float()
                loss = F.cross_entropy(logits, y, weight=self.weights, label_smoothing=cfg.label_smoothing)
                if cfg.offset_loss_weight > 0:
                    loss = loss + cfg.offset_loss_weight * heatmap_loss(heat, self._mm_to_heat(offset), 1.0)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            total += float(loss.detach()) * len(idx)
            right += int((logits.argmax(1) == y).sum())
            seen += len(idx)
        loss_sum, n_right, n_seen = run.sums(total, right, seen)
        return loss_sum / max(n_seen, 1), n_right / max(n_seen, 1)

    @torch.no_grad()
    def classify(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[B,1,m,m] -> (probabilities [B,K], centre offset from the crop centre in mm [B,2])."""
        self.net.eval()
        logits, heat = self.net(crops)
        pts, _ = soft_argmax(heat)
        return torch.softmax(logits, 1), self._heat_to_mm(pts)

    @torch.no_grad()
    def accuracy(self, examples: Sequence[Example]) -> float:
        """Accuracy on crops centred on the labelled point (a cheap validation figure per epoch)."""
        if not examples:
            return float("nan")
        context = torch.from_numpy(np.stack([e.context for e in examples]))[:, None]
        probs, _ = self.classify(to_device(center_crops(context, self.preset.classifier.crop_px), self.device))
        return float((probs.argmax(1).cpu() == torch.tensor([e.grade for e in examples])).float().mean())

    def modules(self) -> dict[str, nn.Module]:
        return {"classifier": self.net}
