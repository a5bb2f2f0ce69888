"""The comparison's metric code against known values, its pipelines end to end through the real
element, and its errors on bad input."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from mstgan.paths import FIXTURES
from mstgan.tools import compare as C
from mstgan.data.degradation import degrade_bi
from mstgan.losses.lpips import LPIPS, fetch_reference_pairs
from mstgan.metrics.video_metrics import psnr, ssim_y


def test_metrics_match_the_official_implementations():
    """LPIPS-alex and PSNR on the five pairs whose official values pyiqa publishes."""
    ref = fetch_reference_pairs()
    rows = {r[0]: r[1:] for r in csv.reader(open(ref / "results_official.csv"))}
    names = rows["Method"]
    lp = LPIPS("alex")
    for i, name in enumerate(names):
        a = np.asarray(Image.open(ref / "ref_dir" / name).convert("RGB"))
        b = np.asarray(Image.open(ref / "dist_dir" / name).convert("RGB"))
        assert psnr(b, a) == pytest.approx(float(rows["psnr"][i]), abs=0.01), name
        got = float(C.lpips_series(lp, b[None], a[None])[0])
        assert got == pytest.approx(float(rows["lpips"][i]), abs=2e-4), name


def test_ssim_of_constant_images_is_the_closed_form():
    # variances vanish, so SSIM = (2ab + C1) / (a^2 + b^2 + C1) on the Y values
    a, b = np.full((32, 32, 3), 100, np.uint8), np.full((32, 32, 3), 140, np.uint8)
    ya, yb = 16 + 219 * 100 / 255, 16 + 219 * 140 / 255
    c1 = (0.01 * 255) ** 2
    assert ssim_y(a, b) == pytest.approx((2 * ya * yb + c1) / (ya**2 + yb**2 + c1), rel=1e-6)
    assert ssim_y(a, a) == pytest.approx(1.0)


def test_temporal_metrics_see_flicker():
    lp = LPIPS("alex")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (1, 48, 48, 3)).astype(np.uint8)
    gt = np.repeat(base, 4, 0)
    flicker = gt.copy()
    flicker[1::2] = np.clip(flicker[1::2].astype(int) + rng.integers(-40, 40, flicker[1::2].shape), 0, 255)
    assert C.tlp(lp, gt, gt) == pytest.approx(0.0, abs=1e-6)
    assert C.tlp(lp, flicker, gt) > 0.5


def test_vmaf_runs_and_orders():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 255, (3, 64, 64, 3)).astype(np.uint8)
    gt = np.asarray([np.asarray(Image.fromarray(f).resize((64, 64), Image.BICUBIC)) for f in gt])
    noisy = np.clip(gt.astype(int) + rng.integers(-30, 30, gt.shape), 0, 255).astype(np.uint8)
    assert C.vmaf(gt, gt) > C.vmaf(noisy, gt)


@pytest.fixture(scope="module")
def tiny_vid4(tmp_path_factory, shared_data):
    """A 7-frame, 96x64 cut of calendar laid out like Vid4 (GT + BIx4)."""
    root = tmp_path_factory.mktemp("vid4")
    src = sorted((shared_data / "vid4" / "GT" / "calendar").glob("*.png"))[:7]
    for i, f in enumerate(src):
        g = np.asarray(Image.open(f).convert("RGB"))[100:164, 200:296]
        for sub, img in (("GT", g), ("BIx4", degrade_bi(g, 4))):
            (root / sub / "calendar").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / sub / "calendar" / f"{i:08d}.png")
    return root


@pytest.fixture(scope="module")
def fixture_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    shutil.copy(FIXTURES / "fixture-x4-t5.onnx", d / "mstgan-x4-fixture.onnx")
    for part in ("extractor", "fusion"):  # parts of the model, not models of their own
        shutil.copy(FIXTURES / f"fixture-x4-t5.{part}.onnx", d / f"mstgan-x4-fixture.{part}.onnx")
    return d


def test_end_to_end_through_gstreamer(tiny_vid4, fixture_models, tmp_path):
    results = C.run([4], ["calendar"], tiny_vid4, tmp_path, threads=1, only=["catrom", "bilinear", "fixture"],
                    models_dir=fixture_models, peer=False, command="test", qps=(32,))  # fmt: skip
    compressed = {r["name"]: r for r in results if r["input"] == "QP 32"}
    results = [r for r in results if r["input"] == "BI"]
    by = {r["name"]: r for r in results}
    # every method also ran on the x264-compressed input, which costs it quality
    assert set(compressed) == set(by)
    for name, r in compressed.items():
        assert r["frames"] == 7 and r["average"]["psnr"] < by[name]["average"]["psnr"], name
    assert set(by) == {"videoscale-bilinear", "videoscale-catrom", "mstgansr-fixture-fp32"}
    for r in results:
        assert r["frames"] == 7 and r["fps"] > 0 and r["peak_mib"] > 1
        avg = r["average"]
        assert 15 < avg["psnr"] < 40 and 0 < avg["ssim"] < 1 and 0 < avg["lpips"] < 1 and avg["vmaf"] >= 0
    # Catmull-Rom is sharper than bilinear on real detail
    assert by["videoscale-catrom"]["average"]["psnr"] > by["videoscale-bilinear"]["average"]["psnr"]
    md = (tmp_path / "results.md").read_text()
    assert "mstgansr fixture FP32" in md and "| videoscale catrom |" in md and "x264 at QP 32" in md
    assert f"x4 measured on {results[0]['machine']}, commit " in md
    assert (tmp_path / "compare" / "crops-calendar.png").exists()
    assert (tmp_path / "compare" / "xt-calendar.png").exists()
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- compare:begin -->\nold\n<!-- compare:end -->\nrest\n")
    C.update_readme(readme, results)
    text = readme.read_text()
    assert "old" not in text and "| videoscale catrom |" in text and text.endswith("rest\n")


def test_a_run_of_one_scale_keeps_the_others_with_their_machine(tmp_path):
    old = {"name": "m", "scale": 2, "commit": "abc"}
    prev = tmp_path / "results.json"
    prev.write_text(json.dumps({"meta": {"machine": "AMD", "date": "2026-11-28"},
                                "results": [old, dict(old, scale=4)]}))  # fmt: skip
    new = [{"name": "m", "scale": 4, "commit": "def", "machine": "Intel", "date": "2026-12-03"}]
    merged = C.merge_previous(prev, new, [4])
    assert [(r["scale"], r["commit"], r["machine"], r["date"]) for r in merged] == [
        (4, "def", "Intel", "2026-12-03"), (2, "abc", "AMD", "2026-11-28")]  # fmt: skip
    assert C.merge_previous(tmp_path / "none.json", new, [4]) == new


def test_a_run_of_some_methods_keeps_the_others_in_place_and_marks_their_runs(tmp_path):
    avg = {"psnr": 25.0, "ssim": 0.7, "lpips": 0.3, "tof": 0.3, "tlp": 1.0}
    row = lambda name, inp, machine: {"name": name, "label": name, "scale": 4, "input": inp, "average": avg,  # noqa: E731
                                      "fps": 5.0, "peak_mib": 200, "machine": machine, "date": "2026-12-07"}
    prev = tmp_path / "results.json"
    before = [row(n, i, "Intel") for i in ("BI", "QP 24") for n in ("a", "real", "b")]
    before.append(dict(row("a", "BI", "Intel"), scale=2))
    prev.write_text(json.dumps({"meta": {"machine": "Intel", "date": "2026-12-07"}, "results": before}))
    new = [row("real", "BI", "AMD"), row("real", "QP 24", "AMD")]
    merged = C.merge_previous(prev, new, [4], only=["real"])
    assert [(r["scale"], r["name"], r["input"], r["machine"]) for r in merged] == [
        (4, "a", "BI", "Intel"), (4, "real", "BI", "AMD"), (4, "b", "BI", "Intel"),
        (4, "a", "QP 24", "Intel"), (4, "real", "QP 24", "AMD"), (4, "b", "QP 24", "Intel"), (2, "a", "BI", "Intel")]  # fmt: skip
    table = C.summary_table(merged, 4)
    assert "| a [1] |" in table and "| real [2] |" in table and "[2] AMD, 2026-12-07" in table
    assert "[" not in C.summary_table(merged, 2)


def test_missing_data_names_the_folder(tmp_path):
    with pytest.raises(C.CompareError, match="Vid4 not found"):
        C.load_clips(tmp_path / "nowhere", 4, ["calendar"], tmp_path)


def test_short_input_clip_is_an_error(tiny_vid4, tmp_path):
    broken = tmp_path / "vid4"
    shutil.copytree(tiny_vid4, broken)
    (broken / "BIx4" / "calendar" / "00000006.png").unlink()
    with pytest.raises(C.CompareError, match="calendar: 6 BIx4 frames .* for 7 GT frames"):
        C.load_clips(broken, 4, ["calendar"], tmp_path)


def test_a_pipeline_that_drops_frames_is_an_error(tiny_vid4, tmp_path):
    clip = C.load_clips(tiny_vid4, 4, ["calendar"], tmp_path)[0]
    m = C.Method("short", "short pipeline", 4, "identity eos-after=3 ! videoscale ! video/x-raw,width={w},height={h}", "classic")
    with pytest.raises(C.CompareError, match="short pipeline on calendar: the pipeline produced [23] frames .* for 7 input frames; frame [23] is missing"):
        C.run_method(m, clip, tmp_path, C.plugin_env(None))


def test_mismatched_output_size_is_an_error():
    lp = LPIPS("alex")
    with pytest.raises(C.CompareError, match="differ"):
        C.clip_metrics(np.zeros((2, 8, 8, 3), np.uint8), C.Reference(np.zeros((2, 8, 12, 3), np.uint8), [], [], []), lp, False, 1)
    torch.set_num_threads(2)


def test_bicubic_on_vid4_reproduces_the_published_numbers(shared_data):
    """The whole protocol (MATLAB bicubic x4 on all 171 BIx4 frames, Y, crop 0, mean per clip then
    over clips) against the literature's 23.78 dB / 0.6347."""
    from mstgan.core.evaluation import evaluate

    avg = evaluate("bicubic", 4, shared_data / "vid4")["average"]
    assert avg["psnr"] == pytest.approx(23.78, abs=0.01)
    assert avg["ssim"] == pytest.approx(0.6347, abs=0.0005)


def test_bench_pipelines_count_every_frame(tmp_path):
    """``make bench``'s harness: a real pipeline per method, every frame accounted for, a
    markdown table with a row per size."""
    from mstgan.tools import bench as B

    env = C.plugin_env(None)
    frames = B.make_frames(48, 32, 5, tmp_path)
    assert frames.stat().st_size == 48 * 32 * 4 * 5
    fixture = FIXTURES / "fixture-x2-t5.onnx"
    ms = [B.Method("fixture", f'mstgansr scale=2 model-location="{fixture}" execution-provider=cpu threads=1'),
          B.Method("videoscale lanczos", "videoscale method=lanczos ! video/x-raw,width={W},height={H}")]
    for m in ms:
        fps, mib = B.run_once(m, frames, 48, 32, 2, 5, env, tmp_path)
        assert fps > 0 and mib > 1
    fps, _ = B.run_once(ms[0], frames, 48, 32, 2, 5, env, tmp_path, extra="batch-size=4")
    assert fps > 0
    with pytest.raises(C.CompareError, match="frames out for 6 in"):
        B.run_once(ms[1], frames, 48, 32, 2, 6, env, tmp_path)
    text = B.markdown([{"size": "48x32 x2", "method": "fixture", "fps": 9.0, "mib": 100.0}],
                      [{"batch": 1, "fps": 9.0, "mib": 100.0}],
                      [{"size": "4096x2160 x2", "method": "fixture", "fps": 0.01, "mib": 2000.0, "secs": 200.0}], 1, 1)
    assert "| 48x32 x2 | 9.00 f/s, 100 MiB |" in text
    assert "| fixture | 0.010 | 200 s | 2000 |" in text
    # the --fast table gives the streaming rate (start-up excluded) where it was measured
    fast = B.markdown([{"size": "48x32 x2", "method": "fixture", "fps": 9.0, "mib": 100.0, "steady": 12.5},
                       {"size": "48x32 x2", "method": "lanczos", "fps": 99.0, "mib": 10.0, "steady": float("nan")}],
                      [], [], 1, 1)  # fmt: skip
    assert "| 48x32 x2 | 9.00 f/s, 100 MiB (steady 12.50) | 99.00 f/s, 10 MiB |" in fast


def test_validation_split_is_the_held_out_clips(shared_data):
    """``evaluate --dataset validation``: the three held-out clips, whole frames, BI inputs; a
    compressed input scores lower than the clean one, and an unknown set is an error."""
    from mstgan.data.clips import VAL_SEQUENCES
    from mstgan.core.evaluation import evaluate

    clean = evaluate("bicubic", 4, shared_data / "vid4", dataset="validation")
    assert list(clean["clips"]) == list(VAL_SEQUENCES)
    assert 20 < clean["average"]["psnr"] < 40
    qp32 = evaluate("bicubic", 4, shared_data / "vid4", qp=32, dataset="validation")
    assert qp32["average"]["psnr"] < clean["average"]["psnr"]
    with pytest.raises(ValueError, match="dataset must be"):
        evaluate("bicubic", 4, shared_data / "vid4", dataset="vid5")


def test_every_shipped_file_is_its_own_method(tmp_path):
    """A variant with a dash (fast-real) is one variant, not the fast model twice."""
    for name in ("mstgan-x4-fast", "mstgan-x4-fast-int8", "mstgan-x4-fast-real", "mstgan-x4-fast-real-int8",
                 "mstgan-x4-fidelity", "mstgan-x4-fidelity.extractor"):  # fmt: skip
        (tmp_path / f"{name}.onnx").write_bytes(b"")
    got = sorted((s, v, p) for s, v, p, _ in C.shipped_models(tmp_path))
    assert got == [(4, "fast", "fp32"), (4, "fast", "int8"), (4, "fast-real", "fp32"), (4, "fast-real", "int8"),
                   (4, "fidelity", "fp32")]  # fmt: skip
    labels = [m.label for m in C.methods_for(4, 2, None, tmp_path)]
    assert len(set(labels)) == len(labels), labels
