import numpy as np
import torch

from mstgan.metrics.video_metrics import psnr, rgb_to_y, ssim


def test_psnr_known_values():
    a = np.zeros((8, 8))
    b = np.full((8, 8), 255.0)
    assert psnr(a, b) == 0.0
    c = a.copy()
    c[0, 0] = 16  # mse = 4
    assert abs(psnr(a, c) - 10 * np.log10(255**2 / 4)) < 1e-9


def test_y_channel_is_matlab_rgb2ycbcr():
    assert abs(rgb_to_y(np.array([[[255, 255, 255]]]))[0, 0] - 235.0) < 1e-9
    assert abs(rgb_to_y(np.array([[[0, 0, 0]]]))[0, 0] - 16.0) < 1e-9


def test_ssim_identity_and_noise():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 255, (64, 64))
    assert abs(ssim(a, a) - 1.0) < 1e-12
    # constant images: only the luminance term is left, (2 mu1 mu2 + c1) / (mu1^2 + mu2^2 + c1)
    c1 = (0.01 * 255) ** 2
    want = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    assert abs(ssim(np.full((32, 32), 100.0), np.full((32, 32), 110.0)) - want) < 1e-12
    smooth = np.tile(np.linspace(0, 255, 64), (64, 1))
    assert ssim(smooth, smooth + rng.normal(0, 40, smooth.shape)) < 0.5


def test_lpips_alex_loads_and_orders():
    from mstgan.losses.lpips import LPIPS

    m = LPIPS("alex")
    x = torch.rand(1, 3, 64, 64)
    near = (x + 0.02 * torch.randn_like(x)).clamp(0, 1)
    far = torch.rand(1, 3, 64, 64)
    assert float(m(x, x)) < 1e-6
    assert float(m(x, near)) < float(m(x, far))
