"""What the commands share: onnxruntime sessions and their timing, the edge-clamped window loop
(ONNX and PyTorch), checkpoints, the evaluation protocol, flow warping scores, calibration
windows. It depends only on ``archs``, ``data``, ``metrics``, ``losses`` and ``paths``, never on
``deploy``, ``training`` or ``tools`` (``tests/test_layers.py`` checks it), so those can all use
it without importing each other."""
