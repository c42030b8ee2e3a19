"""Multi-layer perceptron of the synthetic MI experiment (d -> 100 -> 100 -> 100 -> K, ReLU)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """Fully connected ReLU network.

    Args:
        num_classes: K outputs (logits).
        input_shape: shape of one input; flattened, so (d,) or any shape.
        hidden: widths of the hidden layers.
    """

    def __init__(
        self, num_classes: int, input_shape: Sequence[int], hidden: Sequence[int] = (100, 100, 100)
    ) -> None:
        super().__init__()
        widths = [math.prod(input_shape), *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) -> (B, K) logits."""
        return self.classifier(self.body(x))
