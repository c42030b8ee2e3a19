"""LightningModules: training logic around a plain ``nn.Module`` model."""

from infocam_exp.systems.classifier import ClassifierSystem, DivergenceError

__all__ = ["ClassifierSystem", "DivergenceError"]
