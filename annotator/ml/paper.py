"""Components of the ``paper`` preset: the study's Faster R-CNN detector and VGG-11-BN patch classifier.

Won et al. (Spine 2020) detected a patch around the canal with Faster R-CNN and graded the patch with
VGG. Both come from torchvision with ``weights=None`` (no pretrained weights are reachable): the
detector learns one class, a fixed mm-size square box around the labelled centre, on the overview;
the VGG reads the 1-channel crop around the detected (at training: labelled, jittered) centre. As in
``fast``, batches are augmented on the CPU and moved to the component's ``device``; the detector takes
lists of images and targets on that device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import vgg11_bn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone

from annotator.domain.errors import InputError
from annotator.ml import augment
from annotator.ml.config import Preset
from annotator.ml.device import CPU, to_device
from annotator.ml.fast import StopCheck, batches, center_crops, class_weights, make_optimiser, steps_per_epoch
from annotator.ml.preprocess import Example
from annotator.ml.runtime import Runtime

BACKBONES = {"fasterrcnn_mobilenet_v3_large_fpn": 3, "fasterrcnn_resnet50_fpn": 5}  # -> FPN levels


def build_detector(preset: Preset) -> FasterRCNN:
    """A two-class (background, canal) Faster R-CNN sized for the overview, untrained."""
    cfg = preset.localizer
    if cfg.arch not in BACKBONES:
        raise InputError(f"localizer.arch {cfg.arch!r}: use one of {sorted(BACKBONES)}")
    if cfg.arch == "fasterrcnn_mobilenet_v3_large_fpn":
        backbone = mobilenet_backbone(backbone_name="mobilenet_v3_large", weights=None, fpn=True,
                                      trainable_layers=6)
    else:
        backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=5)
    box = cfg.box_mm / cfg.mm_per_px
    sizes = tuple((box * 0.7, box, box * 1.4) for _ in range(BACKBONES[cfg.arch]))
    anchors = AnchorGenerator(sizes=sizes, aspect_ratios=((1.0,),) * BACKBONES[cfg.arch])
    n = cfg.grid_px
    return FasterRCNN(backbone, num_classes=2, rpn_anchor_generator=anchors, min_size=n, max_size=n,
                      image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0], box_detections_per_img=5,
                      rpn_pre_nms_top_n_train=500, rpn_post_nms_top_n_train=200, rpn_pre_nms_top_n_test=200,
                      rpn_post_nms_top_n_test=50, box_batch_size_per_image=64, rpn_batch_size_per_image=64)


def build_vgg(preset: Preset, n_classes: int) -> nn.Module:
    """torchvision VGG-11 with batch norm, reading one channel, pooled to 1x1 for a small patch."""
    net = vgg11_bn(weights=None, num_classes=n_classes)
    net.features[0] = nn.Conv2d(1, 64, kernel_size=3, padding=1)
    net.avgpool = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Sequential(nn.Linear(512, 256), nn.ReLU(inplace=True),
                                   nn.Dropout(preset.classifier.dropout), nn.Linear(256, n_classes))
    return net


class RCNNLocalizer:
    """Faster R-CNN: the canal centre is the centre of the highest-scoring box."""

    def __init__(self, preset: Preset, device: torch.device = CPU) -> None:
        self.preset = preset
        self.device = device
        self.net = build_detector(preset).to(device)
        self.run = Runtime(device)
        self.train_net: nn.Module = self.net

    def setup(self, n_train: int, epochs: int, run: Runtime) -> None:
        cfg = self.preset.localizer
        self.run = run
        self.train_net = run.prepare(self.net)  # its backbone's batch norm is frozen: nothing to synchronise
        self.opt, self.sched = make_optimiser(self.net, cfg.lr, cfg.weight_decay,
                                              epochs * steps_per_epoch(n_train, cfg.batch_size, run))

    def train_epoch(self, examples: Sequence[Example], gen: torch.Generator, check: StopCheck) -> float:
        cfg, aug, run = self.preset.localizer, self.preset.augment, self.run
        self.train_net.train()
        images = torch.from_numpy(np.stack([e.overview for e in examples]))[:, None]
        points = torch.tensor([e.overview_point for e in examples], dtype=torch.float32)
        half = cfg.box_mm / cfg.mm_per_px / 2.0
        total, seen = 0.0, 0
        for idx in batches(run.order([e.key for e in examples], gen), run.batch_size(cfg.batch_size)):
            check()
            x, p = augment.augment_overview(images[idx], points[idx], aug, cfg.translate_mm, cfg.mm_per_px, gen)
            x, p = to_device(x, self.device), to_device(p, self.device)
            targets = [{"boxes": torch.cat([q - half, q + half])[None],
                        "labels": torch.ones(1, dtype=torch.int64, device=self.device)} for q in p]
            with run.autocast():
                losses = self.train_net([im.expand(3, -1, -1) for im in x], targets)
                loss = sum(v.float() for v in losses.values())
            self.opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            self.opt.step()
            self.sched.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        total, seen_all = run.sums(total, seen)
        return total / max(seen_all, 1)

    @torch.no_grad()
    def locate(self, overviews: torch.Tensor) -> torch.Tensor:
        self.net.eval()
        out = self.net([im.expand(3, -1, -1) for im in overviews])
        centre = (overviews.shape[-1] - 1) / 2.0
        pts = []
        for det in out:
            if len(det["boxes"]):
                b = det["boxes"][int(det["scores"].argmax())]
                pts.append(torch.stack([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]))
            else:  # nothing detected: the overview centre, where the canal usually is
                pts.append(torch.tensor([centre, centre], device=overviews.device))
        return torch.stack(pts)

    def modules(self) -> dict[str, nn.Module]:
        return {"localizer": self.net}


class VGGClassifier:
    """VGG-11-BN on the patch; no centre refinement (the study's pipeline)."""

    def __init__(self, preset: Preset, n_classes: int, device: torch.device = CPU) -> None:
        self.preset = preset
        self.n_classes = n_classes
        self.device = device
        self.net = build_vgg(preset, n_classes).to(device)
        self.run = Runtime(device)
        self.train_net: nn.Module = self.net

    def setup(self, train: Sequence[Example], epochs: int, run: Runtime) -> None:
        cfg, tr = self.preset.classifier, self.preset.train
        self.run = run
        self.train_net = run.prepare(self.net)  # SyncBatchNorm: the grader's statistics over the global batch
        self.opt, self.sched = make_optimiser(self.net, cfg.lr, cfg.weight_decay,
                                              epochs * steps_per_epoch(len(train), cfg.batch_size, run))
        self.weights = class_weights([e.grade for e in train], self.n_classes, tr.class_weight_power).to(self.device)

    def train_epoch(self, examples: Sequence[Example], gen: torch.Generator, check: StopCheck
                    ) -> tuple[float, float]:
        cfg, aug, run = self.preset.classifier, self.preset.augment, self.run
        self.train_net.train()
        context = torch.from_numpy(np.stack([e.context for e in examples]))[:, None]
        grades = torch.tensor([e.grade for e in examples])
        total, right, seen = 0.0, 0, 0
        for idx in batches(run.order([e.key for e in examples], gen), run.batch_size(cfg.batch_size)):
            check()
            x, _ = augment.augment_crops(context[idx], aug, cfg.crop_px, cfg.crop_mm_per_px, gen)
            x, y = to_device(x, self.device), to_device(grades[idx], self.device)
            with run.autocast():
                logits = self.train_net(x).float()
                loss = F.cross_entropy(logits, y, weight=self.weights, label_smoothing=cfg.label_smoothing)
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
        self.net.eval()
        return torch.softmax(self.net(crops), 1), None

    @torch.no_grad()
    def accuracy(self, examples: Sequence[Example]) -> float:
        if not examples:
            return float("nan")
        context = torch.from_numpy(np.stack([e.context for e in examples]))[:, None]
        probs, _ = self.classify(to_device(center_crops(context, self.preset.classifier.crop_px), self.device))
        return float((probs.argmax(1).cpu() == torch.tensor([e.grade for e in examples])).float().mean())

    def modules(self) -> dict[str, nn.Module]:
        return {"classifier": self.net}
