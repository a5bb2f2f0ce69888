import numpy as np
import onnxruntime as ort
import torch

from mstgan.archs import MSTGenerator
from mstgan.export import export_onnx, parity, read_metadata
from mstgan.quantize import calibration_windows, quantize


def test_export_parity_and_metadata(tmp_path):
    torch.manual_seed(0)
    g = MSTGenerator(4)
    path = export_onnx(g, tmp_path / "g.onnx", "fp32", 123)
    assert parity(g, path, hw=(29, 37)) < 1e-4
    meta = read_metadata(path)
    assert meta["scale"] == "4" and meta["window"] == "5" and meta["precision"] == "fp32"
    assert meta["training_steps"] == "123" and meta["version"]


def test_export_dynamic_sizes_and_scales(tmp_path):
    for scale in (2, 3):
        g = MSTGenerator(scale, 5, feat_ch=8, ch=16, n_blocks=2, flow_ch=8)
        path = export_onnx(g, tmp_path / f"g{scale}.onnx")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for h, w in ((16, 16), (21, 33)):
            out = sess.run(None, {"frames": np.random.rand(2, 5, 3, h, w).astype(np.float32)})[0]
            assert out.shape == (2, 3, h * scale, w * scale)


def test_int8_export_stays_within_tolerance(tmp_path, shared_data):
    torch.manual_seed(0)
    g = MSTGenerator(4)
    fp32 = export_onnx(g, tmp_path / "g.onnx")
    wins = calibration_windows(4, 5, n=6, crop=32)
    int8 = quantize(fp32, tmp_path / "g-int8.onnx", wins)
    assert read_metadata(int8)["precision"] == "int8"
    a = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    x = wins[0]
    ya, yb = a.run(None, {"frames": x})[0], b.run(None, {"frames": x})[0]
    mse = float(np.mean((ya - yb) ** 2))
    assert 10 * np.log10(1 / max(mse, 1e-12)) > 35, f"INT8 vs FP32 PSNR too low (mse {mse})"
