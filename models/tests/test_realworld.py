"""The real-world degradation: x264 round trips of whole clips, JPEG for stills, the training
set's degraded versions and their cache."""

import numpy as np

from mstgan.data import realworld as R
from mstgan.data.clips import Sequence
from mstgan.metrics.video_metrics import psnr


def _clip(f=8, h=37, w=45, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = [np.stack([127 + 90 * np.sin(0.3 * xx + 0.2 * yy + 0.4 * t + c) for c in range(3)], -1) for t in range(f)]
    return np.clip(np.stack(frames) + rng.normal(0, 4, (f, h, w, 3)), 0, 255).astype(np.uint8)


def test_x264_round_trip_keeps_size_and_loses_more_at_higher_qp():
    lr = _clip()
    out24, out36 = R.compress_clip(lr, 24), R.compress_clip(lr, 36)
    assert out24.shape == lr.shape and out24.dtype == np.uint8  # odd sizes padded and cropped back
    p24, p36 = np.mean([psnr(a, b) for a, b in zip(out24, lr)]), np.mean([psnr(a, b) for a, b in zip(out36, lr)])
    assert 25 < p36 < p24 < 50, (p24, p36)
    # the same draw gives the same frames (cached clips stay valid)
    assert np.array_equal(R.compress_clip(lr, 24), out24)
    noisy = R.compress_clip(lr, 24, noise=2.0, seed=1)
    assert not np.array_equal(noisy, out24)


def test_real_sequences_add_degraded_versions_and_cache_them(tmp_path):
    hr = np.repeat(np.repeat(_clip(f=6, h=16, w=20), 2, 1), 2, 2)
    seqs = [Sequence("vid", hr, _clip(f=6, h=16, w=20)), Sequence("photo", hr, _clip(f=6, h=16, w=20, seed=3), synthetic=True)]
    out = R.real_sequences(seqs, versions=2, seed=5, cache=tmp_path)
    assert [s.name.split("+")[0] for s in out] == ["vid", "vid", "vid", "photo", "photo", "photo"]
    assert out[0] is seqs[0]  # the clean version stays in
    assert "+qp" in out[1].name and "+jpeg" in out[4].name
    for s in out:
        assert s.lr.shape == seqs[0].lr.shape and s.hr is hr
    assert len(list(tmp_path.glob("real_*.npy"))) == 4
    again = R.real_sequences(seqs, versions=2, seed=5, cache=tmp_path)
    assert all(np.array_equal(a.lr, b.lr) and a.name == b.name for a, b in zip(out, again))
    qps = [int(s.name.split("+qp")[1].split("+")[0]) for s in out if "+qp" in s.name]
    assert all(R.QP_RANGE[0] <= q <= R.QP_RANGE[1] for q in qps)
