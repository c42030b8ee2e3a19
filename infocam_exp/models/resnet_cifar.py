"""ResNet-32 for 32 x 32 images (He et al., "Deep Residual Learning for Image Recognition", CVPR
2016, section 4.2), the backbone of the CIFAR-LT literature (LDAM-DRW, logit adjustment, ...).

A 3x3 conv (16 channels), then three stages of n = 5 basic blocks with 16, 32 and 64 channels (the
first block of stages 2 and 3 halves the resolution with stride 2), global average pooling and a
linear classifier: 6n + 2 = 32 weighted layers. Shortcuts are the paper's option A (used for its
CIFAR results): identity, and where the shape changes, 2x spatial subsampling with the new channels
zero-padded, so shortcuts add no parameters (0.46 M parameters for K = 10).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class PadShortcut(nn.Module):
    """Option-A shortcut: take every ``stride``-th pixel and zero-pad channels up to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels
        if self.extra < 0:
            raise ValueError(f"option-A shortcuts cannot shrink channels ({in_channels} -> {out_channels})")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra:
            # F.pad lists dims from the last (W, H, C). Where the zero channels go is only a
            # relabelling of the block's output channels, so they simply go last.
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra))
        return x


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        same = stride == 1 and in_channels == out_channels
        self.shortcut: nn.Module = nn.Identity() if same else PadShortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCIFAR(nn.Module):
    """CIFAR ResNet with ``blocks_per_stage`` basic blocks per stage (n = 5: ResNet-32).

    Args:
        num_classes: K outputs (logits).
        input_shape: (C, H, W) of one input; C sets the stem's input channels. Any H, W works
            (global pooling); 32 x 32 gives 8 x 8 feature maps.
        blocks_per_stage: n; depth 6n + 2.
        widths: channels of the three stages.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        blocks_per_stage: int = 5,
        widths: Sequence[int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"ResNet needs image inputs (C, H, W), got input_shape={tuple(input_shape)}")
        widths = [int(w) for w in widths]
        self.stem = nn.Sequential(
            nn.Conv2d(int(input_shape[0]), widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages = []
        in_ch = widths[0]
        for i, w in enumerate(widths):
            blocks = []
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_ch, w, stride))
                in_ch = w
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Linear(in_ch, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # He et al. (2016) initialise as in He et al. (ICCV 2015): zero-mean normal, std sqrt(2 / fan)
        # (fan_out here, as torchvision's ResNets); the classifier keeps PyTorch's default.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, widths[-1], H / 4, W / 4) last-stage feature maps (CAM input)."""
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, K) logits: classifier(global average of ``forward_features``)."""
        return self.classifier(self.forward_features(x).mean(dim=(2, 3)))


class ResNet32(ResNetCIFAR):
    """ResNet-32 (n = 5, widths 16/32/64, option-A shortcuts). See ``ResNetCIFAR``."""

    def __init__(self, num_classes: int, input_shape: Sequence[int]) -> None:
        super().__init__(num_classes, input_shape, blocks_per_stage=5, widths=(16, 32, 64))
