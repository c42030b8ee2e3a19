"""Inception-V3 (Szegedy et al., CVPR 2016) for the CUB-200-2011 PC-softmax experiment.

The authors (Qin et al. section 3) used Inception-V3 pretrained on ImageNet + iNaturalist 2017
(Cui et al., CVPR 2018) and trained only the last layer at 299 px, in TF-slim with the network
built in training mode (body BatchNorm on batch statistics, moving averages updated, dropout keep
0.8): ``body_bn="train"``, ``bn_momentum=0.0003``, ``dropout=0.2``, ``head_init="slim"``,
``head_bias_decay=False`` (configs/recipe/cub_inception_v3.yaml). torchvision does not ship those
weights; ``pretrained=True`` loads torchvision's ImageNet-only weights
(``inception_v3_google-0cc3c7bd.pth``), or any state dict with torchvision's parameter names given
by ``weights_path`` (e.g. a converted ImageNet + iNat2017 checkpoint), so expect lower accuracy
than the published 89.73 with the ImageNet-only file.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torchvision
from torch import nn

from infocam_exp.data.wsol import IMAGENET_MEAN, IMAGENET_STD
from infocam_exp.models.pretrained import load_body_weights, load_imagenet_weights

FINETUNE_MODES = ("linear", "full")
BODY_BN_MODES = ("eval", "train")
HEAD_INITS = ("normal", "slim")

# torchvision's Inception3 blocks in forward order (the auxiliary head is dropped)
_BLOCKS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
    "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
    "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c",
)


class InceptionV3(nn.Module):
    """Inception-V3 classifier with a new K-way fc.

    Args:
        num_classes: K.
        input_shape: (3, H, W), H, W >= 75 (299 in the experiment).
        pretrained: load ImageNet weights (see the module docstring).
        weights_path: the weights file (or its folder); None -> torch hub cache.
        finetune: ``"linear"``: a linear probe, every parameter but the fc frozen (no gradient,
            no optimiser group); ``"full"``: everything trains.
        dropout: dropout probability before the fc (torchvision's 0.5; slim's keep 0.8 is 0.2).
        body_bn: mode of the body's BatchNorm layers in training: ``"eval"`` (running statistics
            used and frozen: a fixed feature extractor), ``"train"`` (batch statistics, running
            averages updated, as TF-slim's ``is_training=True``, even with frozen weights);
            None: ``"eval"`` for ``"linear"``, ``"train"`` for ``"full"``.
        bn_momentum: the body's BatchNorm running-average momentum (None: torchvision's 0.1;
            slim's decay 0.9997 is 0.0003).
        head_init: ``"normal"``: fc weight N(0, 0.01); ``"slim"``: truncated normal within 2
            std, std sqrt(1.3 * 2 / 2048), as slim's variance_scaling_initializer for the logits
            conv. Bias zero in both.
        head_bias_decay: whether the optimiser's weight decay applies to the fc bias (slim
            regularises weights only: False).

    Inputs are ImageNet mean/std normalised (the project's DataModules); with the pretrained
    Google weights they are re-normalised to the [-1, 1] range those weights expect.
    Shapes: x (B, 3, H, W) -> features (B, 2048, h, w) (8 x 8 at 299 px) -> logits (B, K).
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        pretrained: bool = False,
        weights_path: str | None = None,
        finetune: str = "linear",
        dropout: float = 0.5,
        body_bn: str | None = None,
        bn_momentum: float | None = None,
        head_init: str = "normal",
        head_bias_decay: bool = True,
    ) -> None:
        super().__init__()
        if finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {FINETUNE_MODES}, got {finetune!r}")
        if body_bn is None:
            body_bn = "eval" if finetune == "linear" else "train"
        if body_bn not in BODY_BN_MODES:
            raise ValueError(f"model.body_bn must be one of {BODY_BN_MODES} or null, got {body_bn!r}")
        if head_init not in HEAD_INITS:
            raise ValueError(f"model.head_init must be one of {HEAD_INITS}, got {head_init!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout is a drop probability in [0, 1), got {dropout}")
        if bn_momentum is not None and not 0.0 <= bn_momentum <= 1.0:
            raise ValueError(f"model.bn_momentum must be in [0, 1] or null, got {bn_momentum}")
        if len(input_shape) != 3 or input_shape[0] != 3:
            raise ValueError(f"InceptionV3 takes (3, H, W) images, got input_shape {tuple(input_shape)}")
        if min(input_shape[1:]) < 75:
            raise ValueError(f"InceptionV3 needs inputs of at least 75 x 75 px, got {tuple(input_shape)}")
        self.finetune = finetune
        self.body_bn = body_bn
        self.head_init = head_init
        self.head_bias_decay = bool(head_bias_decay)
        self.pretrained = bool(pretrained)
        # random init is only needed without weights (and is slow for Inception)
        body = torchvision.models.Inception3(num_classes=1000, aux_logits=False, transform_input=False, init_weights=not pretrained)
        body.fc = nn.Identity()
        self.body = body
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2048, num_classes)
        self.num_features = 2048
        if head_init == "slim":
            std = math.sqrt(1.3 * 2.0 / self.classifier.in_features)
            nn.init.trunc_normal_(self.classifier.weight, 0.0, std, -2 * std, 2 * std)
        else:
            nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)
        if bn_momentum is not None:
            for m in self.body.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = float(bn_momentum)
        if pretrained:
            sd = load_imagenet_weights("inception_v3", weights_path)
            sd = {k: v for k, v in sd.items() if not k.startswith(("fc.", "AuxLogits."))}
            load_body_weights(self.body, sd, (), f"ImageNet weights for inception_v3 ({weights_path or 'hub cache'})")
        # Google's weights expect (x - 0.5) / 0.5 per channel; map ImageNet-normalised input there
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("_in_scale", (std / 0.5).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_in_shift", ((mean - 0.5) / 0.5).view(1, 3, 1, 1), persistent=False)
        if finetune == "linear":
            for p in self.body.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> InceptionV3:
        super().train(mode)
        if self.body_bn == "eval":
            self.body.eval()
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) ImageNet-normalised images -> (B, 2048, h, w) Mixed_7c maps."""
        if self.pretrained:
            x = x * self._in_scale + self._in_shift
        for name in _BLOCKS:
            x = getattr(self.body, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, K) logits."""
        return self.classifier(self.dropout(self.forward_features(x).mean(dim=(2, 3))))

    def param_groups(self, lr: float, head_lr_mult: float = 1.0) -> list[dict[str, Any]]:
        """Optimiser groups: trainable body parameters (``"full"`` only) at ``lr``, fc at
        ``lr * head_lr_mult`` (with ``head_bias_decay=False`` the fc bias in its own group,
        ``"head_bias"``, with weight decay 0). Frozen parameters are in no group."""
        groups = []
        body = [p for p in self.body.parameters() if p.requires_grad]
        if body:
            groups.append({"params": body, "lr": lr, "name": "body"})
        head_lr = lr * head_lr_mult
        if self.head_bias_decay:
            groups.append({"params": list(self.classifier.parameters()), "lr": head_lr, "name": "head"})
        else:
            groups.append({"params": [self.classifier.weight], "lr": head_lr, "name": "head"})
            groups.append({"params": [self.classifier.bias], "lr": head_lr, "name": "head_bias", "weight_decay": 0.0})
        return groups

    def protocol_facts(self) -> dict[str, Any]:
        """``{"model": {...}}``: the model's part of the protocol (JSON-serialisable)."""
        momenta = sorted({m.momentum for m in self.body.modules() if isinstance(m, nn.BatchNorm2d)})
        frozen = self.finetune == "linear"
        return {"model": {
            "backbone": "inception_v3 (torchvision Inception3 body, new fc)",
            "pretrained": self.pretrained,
            "body": "frozen (no gradient, no optimiser group)" if frozen else "trained",
            "body_batchnorm": (
                f"train mode: batch statistics, running averages updated (momentum {momenta})"
                if self.body_bn == "train" else "eval mode: running statistics, frozen"
            ),
            "dropout": float(self.dropout.p),
            "head_init": (
                "truncated normal (2 std), std sqrt(2.6 / 2048)" if self.head_init == "slim" else "normal(0, 0.01)"
            ),
            "head_bias_weight_decay": self.head_bias_decay,
        }}
