"""From checkpoints to shipped files: ONNX export, INT8, release, test fixtures."""
