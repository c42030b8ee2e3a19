"""Training losses. Each takes the training-split class prior explicitly (see ``infocam_exp.build``)."""

from infocam_exp.losses.pc_softmax import CrossEntropy, PCSoftmax, log_pc_softmax

__all__ = ["CrossEntropy", "PCSoftmax", "log_pc_softmax"]
