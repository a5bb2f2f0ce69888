"""Still photos with simulated motion (extra training material)."""

import numpy as np
import pytest

from mstgan.data import clips as D


def _photo(h=300, w=360, seed=1):
    # smooth random texture so every shift is distinguishable
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _best_shift(a, b, r=12):
    """(dy, dx, mismatch fraction) of the integer shift that best maps frame a onto frame b."""
    best = (0, 0, 1.0)
    n = a.shape[0]
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            ya, yb = max(0, dy), max(0, -dy)
            xa, xb = max(0, dx), max(0, -dx)
            pa = a[ya : n - yb, xa : n - xb]
            pb = b[yb : n - ya, xb : n - xa]
            bad = float((pa != pb).any(-1).mean())
            if bad < best[2]:
                best = (dy, dx, bad)
    return best


def test_camera_motion_is_exact_whole_pixel_shifts():
    clip = D.simulate_motion(_photo(), 5, 64, np.random.default_rng(0), vmax=4.0, shake=1.0, p_object=0.0)
    assert clip.shape == (5, 64, 64, 3) and clip.dtype == np.uint8
    shifts = [_best_shift(clip[k], clip[k + 1]) for k in range(4)]
    assert all(bad == 0.0 for _, _, bad in shifts), shifts  # ground truth never resampled
    assert any((dy, dx) != (0, 0) for dy, dx, _ in shifts), "the camera moves"


def test_object_motion_occludes_part_of_the_frame():
    rng = np.random.default_rng(3)
    clip = D.simulate_motion(_photo(), 5, 96, rng, vmax=4.0, shake=0.5, p_object=1.0)
    bads = [_best_shift(clip[k], clip[k + 1])[2] for k in range(4)]
    # the background still follows the camera, the moving patch does not
    assert max(bads) > 0.01 and max(bads) < 0.6, bads


def test_photo_sequences_are_deterministic_and_degraded():
    photos = {"photos/a": _photo(), "photos/b": _photo(seed=2)}
    a = D.photo_sequences(photos, 3, clips_per_photo=2, n_frames=7, size=100, seed=5)
    b = D.photo_sequences(photos, 3, clips_per_photo=2, n_frames=7, size=100, seed=5)
    c = D.photo_sequences(photos, 3, clips_per_photo=2, n_frames=7, size=100, seed=6)
    assert len(a) == 4 and all(s.synthetic for s in a)
    assert a[0].hr.shape == (7, 99, 99, 3) and a[0].lr.shape == (7, 33, 33, 3)
    assert all(np.array_equal(x.hr, y.hr) for x, y in zip(a, b))
    assert not np.array_equal(a[0].hr, c[0].hr)
    from mstgan.data.degradation import degrade_bi

    assert np.array_equal(a[1].lr[3], degrade_bi(a[1].hr[3], 3))


def test_sampler_gives_photos_their_share():
    photos = {"photos/a": _photo()}
    synth = D.photo_sequences(photos, 4, clips_per_photo=3, n_frames=7, size=96)
    real = [D.Sequence("v", np.zeros((9, 400, 400, 3), np.uint8), np.zeros((9, 100, 100, 3), np.uint8))]
    s = D.ClipSampler(real + synth, 4, 5, 1, 16, photo_share=0.3)
    assert s.weights[[q.synthetic for q in s.seqs]].sum() == pytest.approx(0.3)
    lr, hr = s.sample(4)
    assert lr.shape == (4, 5, 3, 16, 16) and hr.shape == (4, 1, 3, 64, 64)


def test_missing_photos_say_how_to_install_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="setup.sh --train"):
        D.load_photos(root=tmp_path)


def test_validation_photos_are_held_out_of_training():
    from mstgan.data.clips import PHOTOS, VAL_PHOTOS

    assert VAL_PHOTOS and not set(VAL_PHOTOS) & set(PHOTOS)
    stem = lambda p: p.split("/contents/")[0].split("/")[-1] if "/contents/" in p else p.rsplit("/", 1)[-1].rsplit(".", 1)[0]  # noqa: E731
    assert not {stem(p) for p in VAL_PHOTOS} & {stem(p) for p in PHOTOS}, "same picture under another path"
