"""The ``fast`` preset's networks: a small U-Net heat-map localizer and a compact crop classifier.

Both are sized for a laptop CPU (a few tens of MMAC per sample): the localizer reads a coarse overview
(4 mm/px) and only has to land within the crop network's capture range; the crop network grades the
canal and predicts where the centre lies in its crop (soft-argmax of a heat map), which refines the
point to a fraction of a millimetre.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, stride: int = 1, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def soft_argmax(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected (x, y) pixel position under the spatial softmax of [B, 1, H, W] logits; and the softmax."""
    b, _, h, w = logits.shape
    prob = torch.softmax(logits.reshape(b, -1), dim=1).reshape(b, h, w)
    xs = torch.arange(w, dtype=logits.dtype, device=logits.device)
    ys = torch.arange(h, dtype=logits.dtype, device=logits.device)
    x = (prob.sum(1) * xs).sum(1)
    y = (prob.sum(2) * ys).sum(1)
    return torch.stack([x, y], -1), prob


def local_peak(logits: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Sub-pixel peak for inference: soft-argmax in a window around the arg-max (ignores far mass)."""
    b, _, h, w = logits.shape
    flat = logits.reshape(b, -1)
    idx = flat.argmax(1)
    py, px = idx // w, idx % w
    ys = torch.arange(h, device=logits.device)[None, :, None]
    xs = torch.arange(w, device=logits.device)[None, None, :]
    near = ((ys - py[:, None, None]).abs() <= radius) & ((xs - px[:, None, None]).abs() <= radius)
    masked = logits[:, 0].masked_fill(~near, float("-inf"))
    pts, _ = soft_argmax(masked[:, None])
    return pts


def heatmap_loss(logits: torch.Tensor, target_px: torch.Tensor, sigma: float) -> torch.Tensor:
    """Cross-entropy of the spatial softmax against a Gaussian at the target, plus L1 of the soft-argmax."""
    b, _, h, w = logits.shape
    ys = torch.arange(h, dtype=logits.dtype, device=logits.device)[None, :, None]
    xs = torch.arange(w, dtype=logits.dtype, device=logits.device)[None, None, :]
    d2 = (xs - target_px[:, 0, None, None]) ** 2 + (ys - target_px[:, 1, None, None]) ** 2
    target = torch.softmax((-d2 / (2 * sigma * sigma)).reshape(b, -1), dim=1)
    logp = torch.log_softmax(logits.reshape(b, -1), dim=1)
    ce = -(target * logp).sum(1).mean()
    pts, _ = soft_argmax(logits)
    return ce + (pts - target_px).abs().sum(1).mean()


class LocNet(nn.Module):
    """U-Net: 1-channel overview (n x n) -> heat-map logits at half resolution (n/2 x n/2).

    Half resolution keeps it cheap; the soft-argmax still lands within a few mm, well inside the crop
    network's re-centring range.
    """

    def __init__(self, width: int = 12) -> None:
        super().__init__()
        c = width
        self.enc0 = nn.Sequential(conv_bn(1, c, stride=2, kernel=5), conv_bn(c, c))  # n/2
        self.enc1 = nn.Sequential(conv_bn(c, 2 * c, stride=2), conv_bn(2 * c, 2 * c))  # n/4
        self.enc2 = nn.Sequential(conv_bn(2 * c, 4 * c, stride=2), conv_bn(4 * c, 4 * c, dilation=2),
                                  conv_bn(4 * c, 4 * c, dilation=2))  # n/8
        self.dec1 = conv_bn(6 * c, 2 * c)
        self.dec0 = conv_bn(3 * c, c)
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        d1 = self.dec1(torch.cat([F.interpolate(e2, size=e1.shape[-2:], mode="nearest"), e1], 1))
        d0 = self.dec0(torch.cat([F.interpolate(d1, size=e0.shape[-2:], mode="nearest"), e0], 1))
        return self.head(d0)


class CropNet(nn.Module):
    """Canal-centred crop -> (grade logits [B, K], centre heat-map logits [B, 1, n/4, n/4])."""

    def __init__(self, n_classes: int, width: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        c = width
        self.stem = nn.Sequential(conv_bn(1, c, stride=2, kernel=5), conv_bn(c, c))  # n/2
        self.stage1 = nn.Sequential(nn.MaxPool2d(2), conv_bn(c, 2 * c), conv_bn(2 * c, 2 * c))  # n/4
        self.stage2 = nn.Sequential(nn.MaxPool2d(2), conv_bn(2 * c, 4 * c), conv_bn(4 * c, 4 * c))  # n/8
        self.stage3 = nn.Sequential(nn.MaxPool2d(2), conv_bn(4 * c, 6 * c), conv_bn(6 * c, 6 * c))  # n/16
        self.centre = nn.Sequential(conv_bn(12 * c, 2 * c, kernel=1), nn.Conv2d(2 * c, 1, 3, padding=1))
        self.grade = nn.Sequential(nn.Dropout(dropout), nn.Linear(6 * c + 4 * c, n_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s1 = self.stage1(self.stem(x))
        s2 = self.stage2(s1)
        s3 = self.stage3(s2)
        size = s1.shape[-2:]
        heat = self.centre(torch.cat([s1, F.interpolate(s2, size=size, mode="nearest"),
                                      F.interpolate(s3, size=size, mode="nearest")], 1))
        pooled = torch.cat([F.adaptive_avg_pool2d(s3, 1).flatten(1), F.adaptive_max_pool2d(s2, 1).flatten(1)], 1)
        return self.grade(pooled), heat
