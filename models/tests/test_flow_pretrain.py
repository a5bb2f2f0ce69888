"""Flow pre-training (DIS distillation): the teacher's convention, the sampler's geometry, the loss."""

import numpy as np
import torch

from mstgan.archs.mstgan_arch import PyramidFlow, flow_warp
from mstgan.data.clips import Sequence
from mstgan.training.flow_pretrain import FlowPairSampler, dis_flow, pretrain_loss, sequence_flows, teacher_pyramid


def moving_texture(n=6, h=48, w=56, step=2, seed=0):
    """A smooth random texture moving ``step`` px to the right per frame."""
    rng = np.random.default_rng(seed)
    big = rng.random((h // 4 + 2, (w + n * step) // 4 + 2, 3))
    big = np.kron(big, np.ones((4, 4, 1)))[: h, : w + n * step]
    import cv2

    big = cv2.GaussianBlur(big, (5, 5), 1.0)
    frames = [big[:, n * step - t * step : n * step - t * step + w] for t in range(n)]
    return (np.stack(frames) * 255).round().astype(np.uint8)


def test_dis_flow_has_the_generators_convention():
    lr = moving_texture()
    f = dis_flow(lr[2], lr[3])  # content moved right by 2: ref(p) = nbr(p + (2, 0))
    inner = f[8:-8, 8:-8]
    assert abs(np.median(inner[..., 0]) - 2) < 0.3 and abs(np.median(inner[..., 1])) < 0.3


def test_cached_flows_cover_both_directions_and_skip_pairs_outside_the_clip(tmp_path):
    lr = moving_texture(n=4)
    fl = sequence_flows(lr, 2, "t", tmp_path)
    assert fl.shape == (4, 4, 48, 56, 2) and fl.dtype == np.float16
    assert np.median(fl[1, 0, 8:-8, 8:-8, 0]) > 1.5  # +1 frame: +2 px
    assert np.median(fl[1, 2, 8:-8, 8:-8, 0]) < -1.5  # -1 frame: -2 px
    assert not fl[3, 0].any() and not fl[0, 2].any()  # no frame 4, no frame -1
    assert np.array_equal(sequence_flows(lr, 2, "t", tmp_path), fl)  # read back from the cache


def test_sampled_teacher_flow_still_warps_the_neighbour_onto_the_centre_after_flips(tmp_path):
    lr = moving_texture(n=6)
    seq = Sequence("t", lr, lr)
    sampler = FlowPairSampler([seq], [sequence_flows(lr, 2, "t", tmp_path)], 2, 32, seed=1)
    ref, nbr, teacher = sampler.sample(32)
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))
    warped = flow_warp(nbr, teacher)
    assert ((warped - ref)[inner] ** 2).mean() < 0.25 * ((nbr - ref)[inner] ** 2).mean()


def test_pretraining_steps_reduce_the_loss(tmp_path):
    torch.manual_seed(0)
    lr = moving_texture(n=6)
    sampler = FlowPairSampler([Sequence("t", lr, lr)], [sequence_flows(lr, 2, "t", tmp_path)], 2, 32)
    net = PyramidFlow(8)
    opt = torch.optim.Adam(net.parameters(), 5e-3)
    ref, nbr, teacher = sampler.sample(8)
    first = None
    # past the early plateau some CPUs show (on an AMD EPYC the loss falls only after ~90 steps)
    for _ in range(160):
        loss = sum(pretrain_loss(net(ref, nbr), teacher, ref, nbr, 0.1, 1.0, 0.01).values())
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.75 * first
    assert [t.shape[-1] for t in teacher_pyramid(teacher, 3)] == [32, 16, 8]
