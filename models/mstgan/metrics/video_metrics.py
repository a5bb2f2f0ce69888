"""Image-quality metrics, BasicSR conventions: Y channel of MATLAB rgb2ycbcr (BT.601, 16-235)."""

from __future__ import annotations

import numpy as np


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """uint8 or [0,255] float HxWx3 RGB -> float64 Y in [16, 235] (MATLAB rgb2ycbcr)."""
    x = img.astype(np.float64)
    return (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0 + 16.0


def psnr(a: np.ndarray, b: np.ndarray, crop_border: int = 0) -> float:
    """PSNR of two same-shape arrays in [0,255] units (float64)."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def psnr_y(a: np.ndarray, b: np.ndarray, crop_border: int = 0) -> float:
    return psnr(rgb_to_y(a), rgb_to_y(b), crop_border)


def _gaussian_filter_valid(x: np.ndarray, win: np.ndarray) -> np.ndarray:
    # separable 11x11 'valid' filtering, as cv2.filter2D + crop in BasicSR's _ssim
    k = win.shape[0]
    h, w = x.shape
    tmp = np.zeros((h - k + 1, w), dtype=np.float64)
    for i in range(k):
        tmp += win[i] * x[i : i + h - k + 1]
    out = np.zeros((h - k + 1, w - k + 1), dtype=np.float64)
    for j in range(k):
        out += win[j] * tmp[:, j : j + w - k + 1]
    return out


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two single-channel images in [0,255] (Gaussian 11x11, sigma 1.5, BasicSR)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g /= g.sum()
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    mu1, mu2 = _gaussian_filter_valid(a, g), _gaussian_filter_valid(b, g)
    s11 = _gaussian_filter_valid(a * a, g) - mu1**2
    s22 = _gaussian_filter_valid(b * b, g) - mu2**2
    s12 = _gaussian_filter_valid(a * b, g) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(m.mean())


def ssim_y(a: np.ndarray, b: np.ndarray) -> float:
    return ssim(rgb_to_y(a), rgb_to_y(b))


# pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags: TecoGAN's tOF settings
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)


def farneback_flows(frames: np.ndarray) -> list[np.ndarray]:
    """OpenCV Farneback flows between consecutive RGB frames, with TecoGAN's parameters."""
    import cv2

    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    return [cv2.calcOpticalFlowFarneback(a, b, None, *FARNEBACK) for a, b in zip(grey[:-1], grey[1:])]


def tof_from_flows(out_flows: list[np.ndarray], gt_flows: list[np.ndarray]) -> float:
    """TecoGAN tOF: mean L2 distance between the output's and the GT's frame-to-frame flows."""
    return float(np.mean([np.sqrt(((fo - fg) ** 2).sum(-1)).mean() for fo, fg in zip(out_flows, gt_flows)]))
