"""Inception-V3 (Szegedy et al., CVPR 2016) for the CUB-200-2011 PC-softmax experiment.

The authors (Qin et al. section 3) used Inception-V3 pretrained on ImageNet + iNaturalist 2017
(Cui et al., CVPR 2018) and trained only the last layer at 299 px. torchvision does not ship those
weights; ``pretrained=True`` loads torchvision's ImageNet-only weights
(``inception_v3_google-0cc3c7bd.pth``), or any state dict with torchvision's parameter names given
by ``weights_path`` (e.g. a converted ImageNet + iNat2017 checkpoint), so expect lower accuracy
than the published 89.73 with the ImageNet-only file.
"""

from __future__ import annotations

from typing import Any

import torch
import torchvision
from torch import nn

from infocam_exp.data.wsol import IMAGENET_MEAN, IMAGENET_STD
from infocam_exp.models.pretrained import load_body_weights, load_imagenet_weights

FINETUNE_MODES = ("linear", "full")

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
        finetune: ``"linear"``: a linear probe, every parameter but the fc frozen and the body kept
            in eval mode (BatchNorm statistics frozen, as a fixed feature extractor);
            ``"full"``: everything trains.
        dropout: dropout before the fc (torchvision's 0.5).

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
    ) -> None:
        super().__init__()
        if finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {FINETUNE_MODES}, got {finetune!r}")
        if len(input_shape) != 3 or input_shape[0] != 3:
            raise ValueError(f"InceptionV3 takes (3, H, W) images, got input_shape {tuple(input_shape)}")
        if min(input_shape[1:]) < 75:
            raise ValueError(f"InceptionV3 needs inputs of at least 75 x 75 px, got {tuple(input_shape)}")
        self.finetune = finetune
        self.pretrained = bool(pretrained)
        # random init is only needed without weights (and is slow for Inception)
        body = torchvision.models.Inception3(num_classes=1000, aux_logits=False, transform_input=False, init_weights=not pretrained)
        body.fc = nn.Identity()
        self.body = body
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2048, num_classes)
        self.num_features = 2048
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)
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
        if self.finetune == "linear":
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
        ``lr * head_lr_mult``."""
        groups = []
        body = [p for p in self.body.parameters() if p.requires_grad]
        if body:
            groups.append({"params": body, "lr": lr, "name": "body"})
        groups.append({"params": list(self.classifier.parameters()), "lr": lr * head_lr_mult, "name": "head"})
        return groups
