import numpy as np

from mstgan import data as D
from mstgan.datapack import build, load
from mstgan.plot import plot, read_log


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
