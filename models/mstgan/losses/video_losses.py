"""Training losses. Each takes its weight in the constructor and returns the weighted value."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mstgan.archs.mstgan_arch import flow_warp
from mstgan.losses.lpips import LPIPS


class CharbonnierLoss(nn.Module):
    """Smooth L1: mean sqrt((x-y)^2 + eps^2)."""

    def __init__(self, weight: float = 1.0, eps: float = 1e-3):
        super().__init__()
        self.weight, self.eps = weight, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.weight * torch.sqrt((pred - target) ** 2 + self.eps**2).mean()


class MSELoss(nn.Module):
    """Weighted mean squared error."""

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.weight * ((pred.float() - target.float()) ** 2).mean()


class PerceptualLoss(nn.Module):
    """LPIPS-VGG distance, on at most ``max_items`` images of the batch (VGG is costly on CPU)."""

    def __init__(self, weight: float = 0.05, net: str = "vgg", max_items: int = 4):
        super().__init__()
        self.weight, self.max_items = weight, max_items
        self.lpips = LPIPS(net) if weight > 0 else None

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.lpips is None:
            return pred.new_zeros(())
        k = min(self.max_items, pred.shape[0])
        return self.weight * self.lpips(pred[:k].clamp(0, 1), target[:k]).mean()


class PhaseGridLoss(nn.Module):
    """Penalises a pixel grid of period ``scale`` in the error (the x4 GAN models' dot grid,
    ``mstgan.lab.gridcheck``): the error's mean at each of the scale x scale output phases,
    over the whole batch so that content averages out and only a systematic grid remains,
    should not differ from its mean over all phases.

    pred/target: [..., C, H, W] with H and W multiples of ``scale``.
    """

    def __init__(self, weight: float, scale: int):
        super().__init__()
        self.weight, self.scale = weight, scale

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        s = self.scale
        err = (pred - target).float()
        err = err.reshape(-1, err.shape[-3], err.shape[-2] // s, s, err.shape[-1] // s, s)
        phases = err.mean(dim=(0, 2, 4))  # [C, s, s]
        return self.weight * (phases - phases.mean(dim=(1, 2), keepdim=True)).abs().mean()


class TemporalLoss(nn.Module):
    """Penalises changes between neighbouring output frames that the ground truth does not have.

    pred/target: [N, K, 3, H, W] with K >= 2 consecutive frames.
    """

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        d_pred = pred[:, 1:] - pred[:, :-1]
        d_gt = target[:, 1:] - target[:, :-1]
        return self.weight * (d_pred - d_gt).abs().mean()


class FlowRegularisation(nn.Module):
    """Optical-flow regularisation: photometric consistency + edge-aware smoothness.

    The photometric term warps each LR neighbour with its flow onto the centre frame, which gives
    the flow estimator a direct signal from the first step (flow learned only through the SR loss
    converges badly). flow: [N, T-1, 2, H, W]; lr: [N, T, 3, H, W].
    """

    def __init__(self, photometric: float = 0.1, smooth: float = 0.01):
        super().__init__()
        self.w_photo, self.w_smooth = photometric, smooth

    def forward(self, flow: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        n, t = lr.shape[:2]
        mid = t // 2
        nbr = torch.cat((lr[:, :mid], lr[:, mid + 1 :]), 1).flatten(0, 1)
        ref = lr[:, mid : mid + 1].expand(-1, t - 1, -1, -1, -1).flatten(0, 1)
        f = flow.flatten(0, 1)
        warped = flow_warp(nbr, f)
        photo = torch.sqrt((warped - ref) ** 2 + 1e-6).mean()
        gx = ref[..., :, 1:] - ref[..., :, :-1]
        gy = ref[..., 1:, :] - ref[..., :-1, :]
        wx = torch.exp(-10 * gx.abs().mean(1, keepdim=True))
        wy = torch.exp(-10 * gy.abs().mean(1, keepdim=True))
        smooth = (wx * (f[..., :, 1:] - f[..., :, :-1]).abs()).mean() + (wy * (f[..., 1:, :] - f[..., :-1, :]).abs()).mean()
        return self.w_photo * photo + self.w_smooth * smooth


def flow_consistency(flow_fwd: torch.Tensor, flow_bwd: torch.Tensor, weight: float = 0.01) -> torch.Tensor:
    """Consistency of the flow between neighbouring windows: t->t+1 (window t) composed with
    t+1->t (window t+1) should return to the start. Both [N, 2, H, W]."""
    back = flow_warp(flow_bwd, flow_fwd)
    return weight * (flow_fwd + back).abs().mean()


class GANLoss(nn.Module):
    """Hinge adversarial loss (stable with spectral-norm discriminators)."""

    def __init__(self, weight: float = 5e-3):
        super().__init__()
        self.weight = weight

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -self.weight * fake_logits.mean()

    @staticmethod
    def discriminator(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
