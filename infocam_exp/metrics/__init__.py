"""Pure metric code (tensors in, numbers out); no Lightning imports."""
