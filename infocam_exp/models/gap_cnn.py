"""A small all-convolutional classifier ending in global average pooling + one linear layer.

Sized for the embedded WSOL benchmark (``infocam_exp.data.synthetic_wsol``) on CPUs: stages of
3x3 conv + BatchNorm + ReLU blocks, a 2x2 max-pool between stages (two pools with the default
three stages, so a 64 px input gives a 16x16 feature map), then GAP and ``classifier``. Being
GAP + linear, its class activation maps are exact: ``logits = classifier(mean_ij F_ij)`` with
``F = forward_features(x)``, so the mean over (i, j) of CAM_k(i, j) = w_k . F_ij, plus b_k, is the
logit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _block(cin: int, cout: int) -> list[nn.Module]:
    # No conv bias: BatchNorm's shift replaces it.
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class GAPCNN(nn.Module):
    """conv stages -> GAP -> ``classifier`` (nn.Linear).

    Args:
        num_classes: K, the number of logits.
        input_shape: (C, H, W) of one input (only C is used; any H, W >= 2 ** (stages - 1) work).
        width: channels of the first stage; stage s has ``width * 2 ** s`` channels.
        depths: conv blocks per stage; a 2x2 max-pool separates consecutive stages, so the feature
            map is the input downsampled by ``2 ** (len(depths) - 1)``. Default (1, 2, 3): six conv
            blocks, 16x16 maps of 64 channels at 64 px, receptive field 38 px. One block at full
            resolution keeps it cheap on CPUs (about 40 MMAC per 64 px image); the extra blocks
            at 32 and 16 px widen the receptive field, which trained faster than (1, 1, 2) or
            than doubling the width in our 2-core trials.
        dropout: dropout before ``classifier`` (0 disables). It acts on the pooled vector only,
            so CAMs (computed from ``forward_features``) are unaffected.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        width: int = 16,
        depths: Sequence[int] = (1, 2, 3),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"GAPCNN needs image inputs (C, H, W), got input_shape={tuple(input_shape)}")
        if num_classes < 2 or width < 1 or not depths or min(depths) < 1:
            raise ValueError(
                f"GAPCNN needs num_classes >= 2, width >= 1 and depths of positive ints, got "
                f"{num_classes}, {width}, {list(depths)}"
            )
        layers: list[nn.Module] = []
        cin = int(input_shape[0])
        for stage, depth in enumerate(depths):
            if stage > 0:
                layers.append(nn.MaxPool2d(2))
            cout = width * 2**stage
            for _ in range(int(depth)):
                layers.extend(_block(cin, cout))
                cin = cout
        self.features = nn.Sequential(*layers)
        self.num_features = cin
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(cin, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) float -> (B, C, h, w) feature map F that CAM uses (before pooling)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) float -> (B, K) logits = classifier(mean over h, w of F)."""
        return self.classifier(self.dropout(self.forward_features(x).mean(dim=(2, 3))))
