import numpy as np
import onnxruntime as ort
import torch

from mstgan.archs.mstgan_arch import MSTGenerator
from mstgan.deploy.export import export_onnx, parity, read_metadata
from mstgan.core.calibration import calibration_windows
from mstgan.deploy.quantize import quantize


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


def test_grown_model_with_the_coarse_context_exports_whole_and_split(tmp_path):
    from mstgan.deploy.export import export_split, split_parity

    torch.manual_seed(0)
    g = MSTGenerator(4, 7, feat_ch=8, ch=16, n_blocks=2, flow_ch=8, context_blocks=2, context_ch=24)
    torch.nn.init.normal_(g.fusion.context.out.weight, std=0.05)  # trained, not the zero start
    path = export_onnx(g, tmp_path / "g.onnx")
    assert read_metadata(path)["window"] == "7"
    for hw in ((29, 37), (16, 21)):  # odd sizes: the 1/4 level rounds up
        assert parity(g, path, hw=hw) < 1e-4
    export_split(g, path, read_metadata(path))
    assert split_parity(path, hw=(29, 37)) < 1e-5


def test_fast_tier_exports_at_any_size_within_its_flop_budget(tmp_path):
    from mstgan.archs.mstgan_arch import FastGenerator
    from mstgan.tools.flops import flops_per_lr_pixel

    torch.manual_seed(0)
    # the shipped configurations: x2 folded to half LR resolution, x4 at LR resolution
    for scale, fold, ch in ((2, 2, 40), (4, 2, 40), (4, 1, 24)):
        g = FastGenerator(scale, 5, ch=ch, n_blocks=3, fold=fold)
        torch.nn.init.normal_(g.out.weight, std=0.05)  # trained, not the zero start
        # the issue's budget for the tier, and far below the MST models' ~1.1
        assert flops_per_lr_pixel(g, 5) < 0.1e6
        path = export_onnx(g, tmp_path / f"f{scale}-{fold}.onnx")
        assert read_metadata(path)["arch"] == "fast"
        for hw in ((29, 37), (16, 22), (17, 20)):  # odd sizes: replicated edge, cropped after
            assert parity(g, path, hw=hw) < 1e-4
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = sess.run(None, {"frames": np.random.rand(2, 5, 3, 21, 33).astype(np.float32)})[0]
        assert out.shape == (2, 3, 21 * scale, 33 * scale)


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


def test_fast_tier_int8_keeps_its_chain_in_int8_and_the_output_sum_float(tmp_path):
    """The fast recipe quantises the residual adds and activations too (no float round trip
    between blocks) but not the sum of the detail and the float bicubic skip (the output image)."""
    import onnx

    from mstgan.archs.mstgan_arch import FastGenerator

    torch.manual_seed(0)
    g = FastGenerator(2, 5, ch=16, n_blocks=2)
    torch.nn.init.normal_(g.out.weight, std=0.05)
    fp32 = export_onnx(g, tmp_path / "f.onnx")
    wins = calibration_windows(2, 5, n=4, crop=32)
    int8 = quantize(fp32, tmp_path / "f-int8.onnx", wins)
    assert read_metadata(int8)["int8_recipe"] == "fast"
    graph = onnx.load(str(int8)).graph
    made = {o: n for n in graph.node for o in n.output}
    adds = [n for n in graph.node if n.op_type == "Add"]

    def quantised_inputs(n):
        return [made.get(i) is not None and made[i].op_type == "DequantizeLinear" for i in n.input]

    skip_sums = [n for n in adds if any(i.startswith("/g/skip/") for i in n.input)]
    assert len(skip_sums) == 1 and not any(quantised_inputs(skip_sums[0])[1:]), "the skip's sum must stay float"
    residual = [n for n in adds if n.name.startswith("/g/body/")]
    assert residual and all(all(quantised_inputs(n)) for n in residual), "residual adds must read int8"
    a = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    x = calibration_windows(2, 5, n=2, crop=32, seed=3)[1]
    mse = float(np.mean((a.run(None, {"frames": x})[0] - b.run(None, {"frames": x})[0]) ** 2))
    assert 10 * np.log10(1 / max(mse, 1e-12)) > 35, f"INT8 vs FP32 PSNR too low (mse {mse})"


def test_feature_caching_pair_matches_the_whole_graph(tmp_path, shared_data):
    from mstgan.deploy.export import export_split, split_parity, split_paths
    from mstgan.deploy.quantize import quantize_split

    torch.manual_seed(0)
    g = MSTGenerator(3, 5, feat_ch=8, ch=16, n_blocks=2, flow_ch=8)
    fp32 = export_onnx(g, tmp_path / "g.onnx", "fp32", 77)
    ext, fus = export_split(g, fp32, read_metadata(fp32))
    assert (ext, fus) == split_paths(fp32)
    for path, part in ((ext, "extractor"), (fus, "fusion")):
        meta = read_metadata(path)
        assert meta["part"] == part and meta["training_steps"] == "77" and meta["feature_channels"] == "8"
    # odd sizes: the pyramid levels round up, the fusion graph must take what the extractor gives
    for hw in ((29, 37), (16, 21)):
        assert split_parity(fp32, hw=hw) < 1e-5
    # the extractor's features really feed the output: zeroed features change it
    from mstgan.deploy.export import fusion_inputs

    x = np.random.default_rng(1).random((1, 5, 3, 20, 24), dtype=np.float32)
    feed = fusion_inputs(ext, x)
    sess = ort.InferenceSession(str(fus), providers=["CPUExecutionProvider"])
    zeroed = {**feed, "feat1": np.zeros_like(feed["feat1"])}
    assert np.abs(sess.run(None, feed)[0] - sess.run(None, zeroed)[0]).max() > 1e-3
    wins = calibration_windows(3, 5, n=4, crop=24)
    int8 = quantize(fp32, tmp_path / "g-int8.onnx", wins)
    quantize_split(fp32, int8, wins)
    assert read_metadata(split_paths(int8)[1])["precision"] == "int8"
    assert split_parity(int8) < 1e-4
    # --check times the fusion graphs too: what the element runs per frame with the cache
    from mstgan.deploy.quantize import check

    r = check(fp32, int8, 3, 5, runs=1, hw=(16, 20))
    assert r["psnr_vs_fp32"] > 25 and r["ms_fusion_fp32"] > 0 and r["ms_fusion_int8"] > 0


def test_every_shipped_model_has_a_matching_feature_pair():
    """A model re-exported without its pair (or with a stale one) would make the element fall
    back to the whole graph with a warning; catch it here instead."""
    from pathlib import Path

    from mstgan.deploy.export import split_parity, split_paths

    models = sorted(p for p in Path(__file__).resolve().parents[1].glob("mstgan-x*-*.onnx") if "." not in p.stem)
    assert len(models) == 20, [p.name for p in models]
    keys = ("scale", "window", "training_steps", "version", "variant", "interpolation")
    for m in models:
        meta = read_metadata(m)
        if meta["precision"] == "int8":  # exact without VNNI too (quantize.WEIGHT_BITS)
            assert meta.get("int8_weight_bits") == "7", m.name
        if meta.get("arch") == "fast":  # early fusion: no per-frame features, no pair
            assert not any(p.exists() for p in split_paths(m)), m.name
            continue
        for part, path in zip(("extractor", "fusion"), split_paths(m)):
            pm = read_metadata(path)
            assert pm["part"] == part and all(pm.get(k) == meta.get(k) for k in keys), (path.name, pm)
        if meta["precision"] == "fp32":
            assert split_parity(m, hw=(17, 23)) < 1e-5, m.name
