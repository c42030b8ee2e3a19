"""The authors' MNIST network (Qin, Kim & Gedeon, arXiv:1911.10688; docs/protocol.md, "MNIST"), a LeNet-5 variant.

conv(C -> 20, 5x5), ReLU, maxpool 2, conv(20 -> 50, 5x5), ReLU, maxpool 2, fc(50*h*w -> 500), ReLU,
fc(500 -> K). At 28 x 28 inputs h = w = 4, so the first fc layer is 800 -> 500 as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LeNet(nn.Module):
    """LeNet-style convolutional classifier.

    Args:
        num_classes: K outputs (logits).
        input_shape: (C, H, W) of one input; C sets the first convolution's input channels and
            H, W the first fc layer's width (H, W >= 16 so both pools have something to pool).
        channels: output channels of the two convolutions (the authors': 20, 50).
        hidden: width of the hidden fc layer (the authors': 500).
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        channels: Sequence[int] = (20, 50),
        hidden: int = 500,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"LeNet needs image inputs (C, H, W), got input_shape={tuple(input_shape)}")
        c, h, w = (int(s) for s in input_shape)
        c1, c2 = (int(ch) for ch in channels)
        # each stage: 5x5 valid conv (-4 pixels), then 2x2 max-pool (floor halving)
        for _ in range(2):
            h, w = (h - 4) // 2, (w - 4) // 2
        if h < 1 or w < 1:
            raise ValueError(f"input_shape={tuple(input_shape)} is too small for LeNet (needs H, W >= 16)")
        self.features = nn.Sequential(
            nn.Conv2d(c, c1, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c2 * h * w, hidden), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, K) logits."""
        return self.classifier(self.fc(self.features(x)))
