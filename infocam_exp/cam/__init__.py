"""CAM / infoCAM maps (pure tensor functions) and a model-agnostic extractor."""

from infocam_exp.cam.api import CAMExtractor, CAMResult, GAPLinearError
from infocam_exp.cam.maps import (
    METHODS,
    class_maps,
    method_weights,
    select_classes,
    upsample_maps,
    window_sum,
)

__all__ = [
    "METHODS",
    "CAMExtractor",
    "CAMResult",
    "GAPLinearError",
    "class_maps",
    "method_weights",
    "select_classes",
    "upsample_maps",
    "window_sum",
]
