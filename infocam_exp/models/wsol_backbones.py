"""WSOL backbones: VGG16-GAP and ResNet50 with a stride-1 layer4, each with optional ADL.

Every model: ``forward(x) -> logits (B, K)``, ``forward_features(x) -> (B, C, H, W)`` (the map a
CAM weights), ``classifier: nn.Linear`` (C -> K) with
``forward(x) == classifier(forward_features(x).mean((2, 3)))``, and
``param_groups(lr, lr_ratio)``: the two optimiser groups of the authors' train.py (info_cam/*/train.py
of kfzyqin/Research-Softmax-with-Mutual-Information; wsolevaluation's main.py splits ResNet the same
way): group ``base`` at ``lr`` and group ``scaled`` at ``lr * lr_ratio`` (x10 in their scripts).
VGG16-GAP: every parameter outside ``features.`` (conv6 and the classifier) is scaled. ResNet50:
every parameter of ``layer4.`` and of the classifier (their ``fc.``) is scaled, so the pretrained
layer4 learns ten times faster than the rest of the body. Parameter names of the body equal
torchvision's, so torchvision's ImageNet state dicts load directly (``infocam_exp.models.pretrained``).

- VGG16-GAP (Zhou et al., CVPR 2016, as in wsolevaluation, Choe et al. CVPR 2020): VGG16's
  convolutions without pool5, + conv 3x3 512 -> 1024 + ReLU, GAP, fc. C = 1024, maps at 1/16 of
  the input (14 x 14 at 224 px, 4 x 4 at 64 px).
- ResNet50 (He et al., CVPR 2016) with layer4 at stride 1 (no dilation): C = 2048, maps at 1/16
  (14 x 14 at 224 px).
- ADL (Choe & Shim, CVPR 2019): parameter-free, applied after the named positions in training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchvision
from torch import nn

from infocam_exp.models.pretrained import load_body_weights, load_weights_with_facts

VGG_ADL_POSITIONS = ("pool3", "pool4", "conv5_3")
VGG_ADL_GAMMA = 0.8
RESNET_ADL_POSITIONS = ("layer3.0", "layer4.0", "layer4.2")
RESNET_ADL_GAMMA = 0.9
_RESNET50_BLOCKS = (3, 4, 6, 3)  # bottleneck blocks per layer


class ADL(nn.Module):
    """Attention-based dropout layer (Choe & Shim, CVPR 2019).

    In training: attention A = mean over channels of x, (B, 1, H, W); with probability
    ``drop_rate`` (one draw per forward, as in the original) the output is x * 1[A < gamma * max A]
    (max per sample: drops the most discriminative region), otherwise x * sigmoid(A) (importance
    map). In eval mode it is the identity. Input and output (B, C, H, W).

    Args:
        drop_rate: probability of using the drop mask.
        gamma: drop threshold as a fraction of the per-sample maximum attention.
    """

    def __init__(self, drop_rate: float = 0.75, gamma: float = 0.8) -> None:
        super().__init__()
        if not 0.0 <= drop_rate <= 1.0:
            raise ValueError(f"ADL drop_rate must be in [0, 1], got {drop_rate}")
        self.drop_rate = float(drop_rate)
        self.gamma = float(gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        attention = x.mean(dim=1, keepdim=True)
        peak = attention.amax(dim=(2, 3), keepdim=True)
        drop_mask = (attention < self.gamma * peak).to(x.dtype)
        importance = torch.sigmoid(attention)
        # a device-side draw + where() avoids a host sync per forward
        use_drop = torch.rand((), device=x.device) < self.drop_rate
        return x * torch.where(use_drop, drop_mask, importance)

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, gamma={self.gamma}"


def _check_shape(input_shape: Sequence[int], pretrained: bool, name: str) -> int:
    if len(input_shape) != 3:
        raise ValueError(f"{name} takes images, input_shape (C, H, W); got {tuple(input_shape)}")
    channels = int(input_shape[0])
    if pretrained and channels != 3:
        raise ValueError(f"{name}: ImageNet weights need 3 input channels, got {channels}")
    return channels


def _adl_modules(
    adl: bool, positions: Sequence[str] | None, default: Sequence[str], valid: Sequence[str],
    drop_rate: float, gamma: float, name: str,
) -> nn.ModuleDict:
    """ADL layers keyed by position name ('.' -> '_' since ModuleDict keys may not hold dots)."""
    if not adl:
        return nn.ModuleDict()
    chosen = list(default if positions is None else positions)
    bad = [p for p in chosen if p not in valid]
    if bad:
        raise ValueError(f"{name}: unknown ADL position(s) {bad}; valid: {list(valid)}")
    return nn.ModuleDict({p.replace(".", "_"): ADL(drop_rate, gamma) for p in chosen})


def _init_head(conv: nn.Conv2d | None, fc: nn.Linear) -> None:
    if conv is not None:
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(conv.bias)
    nn.init.normal_(fc.weight, 0.0, 0.01)
    nn.init.zeros_(fc.bias)


def lr_group_names(model: nn.Module, scaled: Callable[[str], bool]) -> dict[str, list[str]]:
    """Names of the trainable parameters in each optimiser group: ``{"base": [...], "scaled": [...]}``
    (``named_parameters`` order); ``scaled(name)`` says which group a parameter joins."""
    out: dict[str, list[str]] = {"base": [], "scaled": []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            out["scaled" if scaled(name) else "base"].append(name)
    return out


def _groups(model: nn.Module, scaled: Callable[[str], bool], lr: float, lr_ratio: float) -> list[dict[str, Any]]:
    params = dict(model.named_parameters())
    names = lr_group_names(model, scaled)
    groups = [
        {"params": [params[n] for n in names["base"]], "lr": lr, "name": "base"},
        {"params": [params[n] for n in names["scaled"]], "lr": lr * lr_ratio, "name": "scaled"},
    ]
    return [g for g in groups if g["params"]]


def _model_facts(model: nn.Module, positions: Sequence[str]) -> dict[str, Any]:
    adl = None
    if len(model.adl):
        first = next(iter(model.adl.values()))
        adl = {"positions": list(positions), "rate": first.drop_rate, "threshold": first.gamma}
    return {
        "model": {
            "architecture": type(model).__name__,
            "weights": model.weights_info,
            "adl": adl,
            "lr_ratio_params": model.SCALED_RULE,
        }
    }


# VGG16 configuration "D" (Simonyan & Zisserman, ICLR 2015) without pool5; "M" = 2x2 max pool.
_VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


class VGG16GAP(nn.Module):
    """VGG16-GAP for CAM-style WSOL.

    Args:
        num_classes: K.
        input_shape: (C, H, W) of one input (H, W >= 16).
        pretrained: load torchvision's ImageNet VGG16 weights into the convolutions.
        weights_path: the weights file (or its folder); None -> torch hub cache.
        adl: insert ADL layers; ``adl_positions`` among "pool1".."pool4", "conv{b}_{i}"
            (after that conv's ReLU); None -> after pool3, pool4, conv5_3 (Choe & Shim).
        adl_drop_rate: ADL drop-mask probability (0.75).
        adl_gamma: ADL drop threshold; None -> 0.8.

    Shapes: x (B, C, H, W) -> features (B, 1024, H/16, W/16) -> logits (B, K).
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        pretrained: bool = False,
        weights_path: str | None = None,
        adl: bool = False,
        adl_drop_rate: float = 0.75,
        adl_gamma: float | None = None,
        adl_positions: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        in_ch = _check_shape(input_shape, pretrained, "VGG16GAP")
        layers: list[nn.Module] = []
        after: dict[int, str] = {}
        block, conv_in_block = 1, 0
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                after[len(layers) - 1] = f"pool{block}"
                block, conv_in_block = block + 1, 0
            else:
                layers += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                conv_in_block += 1
                after[len(layers) - 1] = f"conv{block}_{conv_in_block}"
                in_ch = int(v)
        # indices 0..29 match torchvision's vgg16().features, so its state dict keys load as-is
        self.features = nn.Sequential(*layers)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        self.adl = _adl_modules(
            adl, adl_positions, VGG_ADL_POSITIONS, list(after.values()), adl_drop_rate,
            VGG_ADL_GAMMA if adl_gamma is None else adl_gamma, "VGG16GAP",
        )
        self._adl_after = {i: name for i, name in after.items() if name in self.adl}
        self.conv6 = nn.Conv2d(512, 1024, kernel_size=3, padding=1)
        self.relu6 = nn.ReLU(inplace=True)
        self.classifier = nn.Linear(1024, num_classes)
        self.num_features = 1024
        self.weights_info: dict[str, Any] | None = None
        _init_head(self.conv6, self.classifier)
        if pretrained:
            sd, self.weights_info = load_weights_with_facts("vgg16", weights_path)
            body = {k: v for k, v in sd.items() if k.startswith("features.") and int(k.split(".")[1]) < len(self.features)}
            load_body_weights(self, body, ("conv6.", "classifier."), f"ImageNet weights for vgg16 ({weights_path or 'hub cache'})")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, 1024, H/16, W/16) maps after conv6 + ReLU."""
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._adl_after:
                x = self.adl[self._adl_after[i]](x)
        return self.relu6(self.conv6(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, K) logits."""
        return self.classifier(self.forward_features(x).mean(dim=(2, 3)))

    #: the authors' train.py: every parameter outside ``features.`` gets lr x lr_ratio
    SCALED_RULE = "every parameter outside features. (conv6, classifier)"

    @staticmethod
    def is_scaled(name: str) -> bool:
        return not name.startswith("features.")

    def protocol_facts(self) -> dict[str, Any]:
        """Weights file and sha256, ADL positions / rate / threshold, the lr-ratio rule."""
        return _model_facts(self, [n for n in self._adl_after.values()])

    def param_groups(self, lr: float, lr_ratio: float = 10.0) -> list[dict[str, Any]]:
        """Optimiser groups: ``base`` = the VGG convolutions at ``lr``; ``scaled`` = conv6 and the
        classifier at ``lr * lr_ratio`` (module docstring)."""
        return _groups(self, self.is_scaled, lr, lr_ratio)


class ResNet50GAP(nn.Module):
    """ResNet50 with layer4 at stride 1 (no dilation), GAP and fc, for CAM-style WSOL.

    Args:
        num_classes: K.
        input_shape: (C, H, W) of one input (H, W >= 32).
        pretrained: load ImageNet ResNet50 V1 weights (``infocam_exp.models.pretrained``: the
            authors' ``resnet50-19c8e357.pth`` or torchvision's ``resnet50-0676ba61.pth``; any
            other file only when named by ``weights_path``).
        weights_path: the weights file (or its folder); None -> torch hub cache.
        adl: insert ADL layers; ``adl_positions`` "layer{L}.{B}" (after block B of layer L);
            None -> after layer3.0, layer4.0, layer4.2 (Choe & Shim).
        adl_drop_rate: ADL drop-mask probability (0.75).
        adl_gamma: ADL drop threshold; None -> 0.9.

    Shapes: x (B, C, H, W) -> features (B, 2048, H/16, W/16) -> logits (B, K).
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        pretrained: bool = False,
        weights_path: str | None = None,
        adl: bool = False,
        adl_drop_rate: float = 0.75,
        adl_gamma: float | None = None,
        adl_positions: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        in_ch = _check_shape(input_shape, pretrained, "ResNet50GAP")
        # ADL positions are checked before the (slow) body is built
        valid = [f"layer{i}.{b}" for i, n in enumerate(_RESNET50_BLOCKS, start=1) for b in range(n)]
        self.adl = _adl_modules(
            adl, adl_positions, RESNET_ADL_POSITIONS, valid, adl_drop_rate,
            RESNET_ADL_GAMMA if adl_gamma is None else adl_gamma, "ResNet50GAP",
        )
        tv = torchvision.models.resnet50(weights=None)
        if in_ch != 3:
            tv.conv1 = nn.Conv2d(in_ch, 64, kernel_size=7, stride=2, padding=3, bias=False)
        # stride 1 in layer4 keeps 1/16 resolution (14 x 14 at 224 px); torchvision's
        # Bottleneck strides in conv2 and in the shortcut's 1x1 conv
        tv.layer4[0].conv2.stride = (1, 1)
        tv.layer4[0].downsample[0].stride = (1, 1)
        self.conv1, self.bn1, self.relu, self.maxpool = tv.conv1, tv.bn1, tv.relu, tv.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = tv.layer1, tv.layer2, tv.layer3, tv.layer4
        self.classifier = nn.Linear(2048, num_classes)
        self.num_features = 2048
        self.weights_info: dict[str, Any] | None = None
        _init_head(None, self.classifier)
        if pretrained:
            sd, self.weights_info = load_weights_with_facts("resnet50", weights_path)
            body = {k: v for k, v in sd.items() if not k.startswith("fc.")}
            load_body_weights(self, body, ("classifier.",), f"ImageNet weights for resnet50 ({weights_path or 'hub cache'})")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, 2048, H/16, W/16) layer4 maps."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            for b, block in enumerate(getattr(self, f"layer{i}")):
                x = block(x)
                key = f"layer{i}_{b}"
                if key in self.adl:
                    x = self.adl[key](x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, K) logits."""
        return self.classifier(self.forward_features(x).mean(dim=(2, 3)))

    #: the authors' train.py: every parameter of layer4 and fc (our classifier) gets lr x lr_ratio
    SCALED_RULE = "every parameter of layer4. and classifier. (the authors' fc.)"

    @staticmethod
    def is_scaled(name: str) -> bool:
        return name.startswith(("layer4.", "classifier."))

    def protocol_facts(self) -> dict[str, Any]:
        """Weights file and sha256, ADL positions / rate / threshold, the lr-ratio rule."""
        return _model_facts(self, [k.replace("_", ".") for k in self.adl])

    def param_groups(self, lr: float, lr_ratio: float = 10.0) -> list[dict[str, Any]]:
        """Optimiser groups: ``base`` = conv1 ... layer3 at ``lr``; ``scaled`` = layer4 and the
        classifier at ``lr * lr_ratio`` (module docstring)."""
        return _groups(self, self.is_scaled, lr, lr_ratio)
