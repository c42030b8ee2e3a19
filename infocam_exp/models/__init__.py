"""Plain ``nn.Module`` networks. Each takes ``num_classes`` and ``input_shape`` (from the data)."""
