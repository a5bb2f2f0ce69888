import pytest
import torch

from mstgan.archs.mstgan_arch import (DetailRefinement, FeatureExtractor, MSTGenerator, PyramidFlow, TemporalDiscriminator,
                          TemporalFusion, flow_warp)  # fmt: skip
from mstgan.tools.flops import flops_per_lr_pixel, n_params


def test_feature_extractor_pyramid_shapes_odd_size():
    feats = FeatureExtractor(32)(torch.rand(2, 3, 45, 31))
    assert [tuple(f.shape) for f in feats] == [(2, 32, 45, 31), (2, 32, 23, 16), (2, 32, 12, 8)]


def test_pyramid_flow_shapes_and_zero_init():
    ref, nbr = torch.rand(3, 3, 45, 31), torch.rand(3, 3, 45, 31)
    flows = PyramidFlow(24)(ref, nbr)
    assert [tuple(f.shape) for f in flows] == [(3, 2, 45, 31), (3, 2, 23, 16), (3, 2, 12, 8)]
    assert all(f.abs().max() == 0 for f in flows), "flow heads start at zero motion"


def test_flow_warp_identity_and_shift():
    x = torch.rand(1, 3, 10, 12)
    assert torch.allclose(flow_warp(x, torch.zeros(1, 2, 10, 12)), x, atol=1e-6)
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0] = 1.0  # sample one pixel to the right
    assert torch.allclose(flow_warp(x, flow)[..., :-1], x[..., 1:], atol=1e-5)


def test_fusion_and_refinement_shapes():
    aligned = [torch.rand(2, 5 * 32, 20, 20), torch.rand(2, 5 * 32, 10, 10), torch.rand(2, 5 * 32, 5, 5)]
    assert TemporalFusion(32, 48, 5)(aligned).shape == (2, 48, 20, 20)
    base, skip = torch.rand(2, 3, 80, 80), torch.rand(2, 3, 80, 80)
    out = DetailRefinement(48, 4)(torch.rand(2, 48, 20, 20), base, skip)
    assert out.shape == (2, 3, 80, 80)
    assert torch.equal(out, base), "refinement starts as identity"


@pytest.mark.parametrize("scale,t", [(2, 5), (3, 5), (4, 5), (4, 3), (4, 7)])
def test_generator_shapes(scale, t):
    g = MSTGenerator(scale, t, feat_ch=8, ch=16, n_blocks=2, flow_ch=8)
    out, flow = g(torch.rand(2, t, 3, 17, 23), return_flow=True)
    assert out.shape == (2, 3, 17 * scale, 23 * scale)
    assert flow.shape == (2, t - 1, 2, 17, 23)


def test_generator_budget():
    g = MSTGenerator(4)
    assert n_params(g) <= 2_000_000
    assert flops_per_lr_pixel(g, 5) <= 1.2e6


def test_temporal_discriminator_judges_sequences():
    d = TemporalDiscriminator(3)
    assert d(torch.rand(2, 3, 3, 64, 64)).shape == (2, 1, 4, 4)
    seq = torch.rand(1, 3, 3, 64, 64)
    shuffled = seq[:, [2, 0, 1]]
    assert not torch.allclose(d(seq), d(shuffled)), "frame order matters to a temporal discriminator"


def test_cubic_upsample_is_torch_bicubic():
    import torch.nn.functional as F

    from mstgan.archs.mstgan_arch import CubicUpsample

    torch.manual_seed(0)
    for s in (2, 3, 4):
        for hw in ((5, 7), (29, 37)):
            x = torch.rand(2, 3, *hw)
            ref = F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)
            assert torch.allclose(CubicUpsample(s)(x), ref, atol=2e-5), (s, hw)
            # the phases on a folded grid, shuffled once, are the same image
            for f in (1, 2):
                xe = x[..., : hw[0] // f * f, : hw[1] // f * f]
                folded = F.pixel_shuffle(CubicUpsample(s, fold=f)(xe, phases=True), s * f)
                assert torch.allclose(folded, CubicUpsample(s)(xe), atol=1e-5), (s, hw, f)
    # a fixed operator: nothing to train, nothing in the checkpoints
    assert not list(CubicUpsample(4).parameters()) and not CubicUpsample(4).state_dict()


def test_generator_without_alignment_has_no_flow_and_fuses_unwarped_features():
    kw = dict(feat_ch=8, ch=16, n_blocks=2, flow_ch=8)
    g, ref = MSTGenerator(4, 5, align=False, **kw), MSTGenerator(4, 5, **kw)
    assert n_params(g) < n_params(ref) and not any(k.startswith("flow.") for k in g.state_dict())
    x = torch.rand(2, 5, 3, 17, 23)
    out, flow = g(x, return_flow=True)
    assert out.shape == (2, 3, 68, 92) and flow.abs().max() == 0
    aligned, _ = g.align(x)
    feats = g.extract(x.reshape(10, 3, 17, 23))[0].reshape(2, 5, 8, 17, 23)
    assert torch.equal(aligned[0], feats.flatten(1, 2)), "every frame's features where they lie"



def test_fast_head_as_strided_conv_equals_the_conv_on_unshuffled_pixels():
    from mstgan.archs.mstgan_arch import FastGenerator

    conv = FastGenerator(2, 3, ch=8, n_blocks=1).head[0]
    torch.nn.init.normal_(conv.weight)
    xs = torch.rand(2, 9, 18, 26)
    ref = torch.nn.functional.conv2d(torch.nn.functional.pixel_unshuffle(xs, 2), conv.weight, conv.bias, padding=1)
    assert torch.allclose(conv(xs), ref, atol=1e-5)
