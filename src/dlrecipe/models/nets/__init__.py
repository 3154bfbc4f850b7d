"""Plain PyTorch nets, each built from `input_shape` and `num_outputs` given by the data."""
