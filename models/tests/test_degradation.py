import numpy as np
from PIL import Image

from mstgan.data.degradation import degrade_bi, degrade_bi_frames, degrade_bi_torch


def test_bi_degradation_is_bit_exact_with_vid4_bix4(shared_data):
    n = 0
    for clip in ("calendar", "city", "foliage", "walk"):
        for gt_path in sorted((shared_data / "vid4" / "GT" / clip).glob("*.png")):
            gt = np.asarray(Image.open(gt_path).convert("RGB"))
            want = np.asarray(Image.open(shared_data / "vid4" / "BIx4" / clip / gt_path.name).convert("RGB"))
            got = degrade_bi(gt, 4)
            assert got.shape == want.shape, f"{clip}/{gt_path.name}"
            assert np.array_equal(got, want), f"{clip}/{gt_path.name}: {(got != want).sum()} values differ"
            n += 1
    assert n == 171


def test_torch_degradation_matches_numpy():
    import torch

    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, size=(48, 36, 3), dtype=np.uint8)
    ref = degrade_bi(hr, 3).astype(np.float64)
    t = torch.from_numpy(hr.astype(np.float64) / 255).permute(2, 0, 1)
    got = (degrade_bi_torch(t, 3).permute(1, 2, 0).numpy() * 255).round().clip(0, 255)
    assert np.abs(got - ref).max() <= 1


def test_batched_degradation_on_a_device_matches(shared_data):
    # the GPU path (here on the CPU device): same float64 matrices, same rounding, on real frames
    files = sorted((shared_data / "vid4" / "GT" / "city").glob("*.png"))[:4]
    gt = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    want = degrade_bi_frames(gt, 4)
    assert np.array_equal(want, np.stack([degrade_bi(f, 4) for f in gt]))
    assert np.array_equal(degrade_bi_frames(gt, 4, "cpu"), want)
