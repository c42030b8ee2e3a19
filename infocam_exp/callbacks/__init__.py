"""Thin Lightning adapters over ``infocam_exp.metrics`` and ``infocam_exp.cam``.

A callback that produces results for ``metrics.json`` exposes them as ``results`` (a flat dict
``"<split>/<metric>[@<variant>]" -> float | list``); ``infocam_exp.run`` collects them.
"""

from infocam_exp.callbacks.classification import ClassificationMetrics
from infocam_exp.callbacks.localization import LocalizationEvaluation

__all__ = ["ClassificationMetrics", "LocalizationEvaluation"]
