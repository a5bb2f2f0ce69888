import pytest
import numpy as np

from mstgan.data import clips as D
from mstgan.data.datapack import build, load
from mstgan.tools.plot import plot, read_log


def test_datapack_roundtrip_within_budget(tmp_path, shared_data):
    names = ["sintel_raft/market", "toflow_vimeo/basketball"]
    path = build(tmp_path / "pack.npz", budget_mib=2.0, names=names)
    assert path.stat().st_size < 1.15 * 2.0 * 2**20
    seqs = load(path)
    assert sorted(seqs) == sorted(names)
    orig = D.load_frames(shared_data / "train" / "toflow_vimeo" / "basketball")
    got = seqs["toflow_vimeo/basketball"]
    assert got.shape[1:] == orig.shape[1:] and 7 <= len(got) <= len(orig)
    assert np.abs(got.astype(int) - orig[: len(got)].astype(int)).mean() < 4, "JPEG q92 stays close"


def test_plot_reads_resumed_logs_and_draws(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text(
        "step,wall_s,lr,total,pixel,perceptual,flow,temporal,flow_consistency,adversarial,d_loss,val_psnr,val_lpips,event\n"
        "50,1,1e-4,0.5,0.4,0.05,0.05,,,,,,,\n"
        "100,2,1e-4,0.4,0.3,0.05,0.05,,,,,27.0,0.3,\n"
        "100,3,1e-4,0.39,0.29,0.05,0.05,,,,,27.5,0.28,\n"
    )
    rows = read_log(log)
    assert [r["step"] for r in rows] == [50, 100]
    assert rows[1]["val_psnr"] == 27.5, "the resumed run's row wins"
    out = plot(log, tmp_path / "curve.png")
    assert out.stat().st_size > 5000


def test_compact_lpips_weights_stay_close(tmp_path):
    """The GPU pack's smaller LPIPS weights (AlexNet fp16, VGG16 int8) give nearly the same distances."""
    import torch

    from mstgan.losses.lpips import LPIPS, fetch, write_compact

    write_compact(tmp_path)
    assert (tmp_path / "vgg16.npz").stat().st_size < 0.3 * (fetch() / "vgg16.npz").stat().st_size
    torch.manual_seed(0)
    a = torch.rand(2, 3, 64, 64)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    for net, tol in (("alex", 1e-3), ("vgg", 1e-2)):
        full, small = LPIPS(net)(a, b), LPIPS(net, tmp_path)(a, b)
        assert torch.allclose(full, small, rtol=tol), (net, full, small)


def test_network_interpolation_blends_and_picks_by_tof():
    import pytest
    import torch

    from mstgan.training.interpolate import blend, choose

    a = {"w": torch.zeros(2, 2), "b": torch.ones(3)}
    b = {"w": torch.ones(2, 2), "b": torch.full((3,), 3.0)}
    mid = blend(a, b, 0.25)
    assert torch.allclose(mid["w"], torch.full((2, 2), 0.25)) and torch.allclose(mid["b"], torch.full((3,), 1.5))
    with pytest.raises(ValueError, match="different architectures"):
        blend(a, {"w": torch.ones(3, 3), "b": torch.ones(3)}, 0.5)
    table = [{"alpha": 0.0, "video": {"tof": 1.0}, "photos": {"tof": 2.0}},
             {"alpha": 0.5, "video": {"tof": 1.04}, "photos": {"tof": 2.0}},
             {"alpha": 0.8, "video": {"tof": 0.9}, "photos": {"tof": 2.2}},
             {"alpha": 1.0, "video": {"tof": 1.2}, "photos": {"tof": 2.1}}]  # fmt: skip
    assert choose(table, 0.05)["alpha"] == 0.5
    assert choose(table, 0.25)["alpha"] == 1.0
    assert choose(table, 0.05)["alpha"] != 0.8, "every group must hold the margin, not just one"


def test_interpolation_lifts_a_shorter_perceptual_window_to_the_fidelity_one():
    import torch

    from mstgan.archs.mstgan_arch import MSTGenerator
    from mstgan.training.interpolate import blend, match_window

    arch = {"n_frames": 3, "feat_ch": 8, "ch": 16, "n_blocks": 2, "flow_ch": 8, "refine_blocks": 1}
    short, long = MSTGenerator(4, **arch).eval(), MSTGenerator(4, **{**arch, "n_frames": 5}).eval()
    perc = {"options": {"scale": 4, "arch": arch}, "ema": short.state_dict()}
    fid = {"options": {"scale": 4, "arch": {**arch, "n_frames": 5}}, "ema": long.state_dict()}
    lifted = match_window(fid, perc)
    assert lifted["options"]["arch"] == fid["options"]["arch"]
    long.load_state_dict(blend(fid["ema"], lifted["ema"], 1.0))  # alpha 1: the perceptual model alone
    x = torch.rand(1, 5, 3, 12, 16)
    with torch.no_grad():
        assert torch.allclose(long(x), short(x[:, 1:4]), atol=1e-5)
    assert match_window(perc, fid) is fid, "a longer perceptual window is left for blend() to refuse"


def test_task_arithmetic_adds_the_stage2_change_and_leaves_grown_modules_alone():
    import pytest
    import torch

    from mstgan.training.interpolate import blend, transplant

    base = {"w": torch.zeros(2), "b": torch.ones(1)}
    perc = {"w": torch.tensor([1.0, -1.0]), "b": torch.full((1,), 2.0)}
    fid = {"w": torch.tensor([5.0, 5.0]), "b": torch.full((1,), 3.0), "ctx": torch.full((3,), 7.0)}
    mixed = blend(fid, transplant(fid, perc, base), 0.5)  # fid + 0.5 * (perc - base)
    assert torch.allclose(mixed["w"], torch.tensor([5.5, 4.5])) and torch.allclose(mixed["b"], torch.full((1,), 3.5))
    assert torch.equal(mixed["ctx"], fid["ctx"]), "a module only the fidelity model has gets no stage-2 change"
    with pytest.raises(ValueError, match="do not fit"):
        transplant(fid, {**perc, "w": torch.ones(3)}, {**base, "w": torch.ones(3)})


def test_profile_sums_kernel_time_per_operator():
    from mstgan.lab.op_profile import op_times
    from mstgan.paths import FIXTURES

    fixture = FIXTURES / "fixture-x4-t5.onnx"
    times = op_times(fixture, hw=(24, 32), runs=2, threads=1)
    assert times["Conv"] > 0 and times["GridSample"] > 0 and "Resize" in times
    assert list(times.values()) == sorted(times.values(), reverse=True)


def test_flowcheck_scores_alignment_by_warping_psnr():
    import cv2
    import numpy as np
    import torch

    from mstgan.lab.flowcheck import farneback, warp_scores, zero

    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.integers(0, 256, (80, 96, 3)).astype(np.uint8), (0, 0), 1.5)
    frames = np.stack([np.roll(tex, (t, 2 * t), (0, 1)) for t in range(4)])  # moves 2 px right, 1 down
    exact = lambda r, n: torch.tensor([2.0, 1.0]).view(1, 2, 1, 1).expand(1, 2, *r.shape[2:])  # noqa: E731
    sc = warp_scores(frames, {"exact": exact, "farneback": farneback, "none": zero}, distances=(1,), stride=1)
    assert sc[("exact", 1)] >= 90 and sc[("farneback", 1)] > sc[("none", 1)] + 20, sc


def test_ablation_refuses_arms_with_different_recipes(tmp_path):
    from mstgan.lab.ablation import check_same_recipe, train_seconds
    from mstgan.training.train import load_options

    a = load_options(None, {"arch": {"type": "fast", "n_frames": 5, "ch": 8, "n_blocks": 1}})
    b = load_options(None, {"lr_g": a["lr_g"] * 2})
    check_same_recipe([a, load_options(None, {})])  # only the architecture differs
    with pytest.raises(SystemExit, match="lr_g"):
        check_same_recipe([a, b])
    # a resumed run's log: the wall clock restarts, the time adds up
    log = tmp_path / "log.csv"
    log.write_text("step,wall_s\n50,10.0\n100,20.0\n150,5.0\n200,15.0\n210,\n")
    assert train_seconds(log) == 35.0


def test_openvino_tool_finds_its_onnxruntime_and_sets_it_per_provider(tmp_path):
    from mstgan.tools.compare import CompareError
    from mstgan.tools.openvino import openvino_library, provider_env

    with pytest.raises(CompareError, match="scripts/setup.sh"):
        openvino_library(tmp_path)
    capi = tmp_path / "onnxruntime" / "capi"
    capi.mkdir(parents=True)
    for name in ("libonnxruntime.so.1", "libonnxruntime.so.1.24.1", "libonnxruntime_providers_openvino.so"):
        (capi / name).write_bytes(b"")
    lib = openvino_library(tmp_path)
    assert lib.name == "libonnxruntime.so.1.24.1"
    base = {"ORT_DYLIB_PATH": "/elsewhere/libonnxruntime.so.1.32.0", "GST_PLUGIN_PATH": "/p"}
    # cpu runs the venv's onnxruntime, whatever the caller's environment says
    assert "ORT_DYLIB_PATH" not in provider_env(base, "cpu", lib)
    ov = provider_env(base, "openvino", lib)
    assert ov["ORT_DYLIB_PATH"] == str(lib) and ov["GST_PLUGIN_PATH"] == "/p"


def test_speedpair_times_both_releases_and_names_a_missing_file(tmp_path, capsys):
    import shutil

    from mstgan.lab.speedpair import main
    from mstgan.paths import REPO

    fixtures = REPO / "tests" / "fixtures"
    for label, t in (("old", 5), ("new", 7)):
        d = tmp_path / label
        d.mkdir()
        pairs = [("", ""), ("", "-int8"), (".extractor", ".extractor"), (".fusion", ".fusion"), (".fusion", "-int8.fusion")]
        for src, dst in pairs:  # FP32 fixtures stand in for the INT8 files: the tool only times them
            shutil.copy(fixtures / f"fixture-x4-t{t}{src}.onnx", d / f"m{dst}.onnx")
    assert main(["--old", str(tmp_path / "old"), "--new", str(tmp_path / "new"), "--model", "m", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("whole window, old") == 2 and out.count("whole window, new") == 2
    assert out.count("feature cache, old") == 2 and out.count("feature cache, new") == 2
    (tmp_path / "new" / "m-int8.fusion.onnx").unlink()
    assert main(["--old", str(tmp_path / "old"), "--new", str(tmp_path / "new"), "--model", "m"]) == 2
    assert "m-int8.fusion.onnx is missing" in capsys.readouterr().out
