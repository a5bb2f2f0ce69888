"""The dot grid (issue #29): a flat LR area must stay flat at every scale x scale output phase."""

import pytest
import torch

from mstgan.archs.mstgan_arch import MSTGenerator
from mstgan.lab.gridcheck import phase_range, phase_spread
from mstgan.paths import MODELS


def _phase_spread(g: MSTGenerator, level: float = 0.4) -> float:
    """Spread of the output's phase means on a flat window, in code values, 12 LR pixels from the
    border (where zero padding reaches in)."""
    x = torch.full((1, g.n_frames, 3, 48, 48), level)
    with torch.no_grad():
        y = g(x)[0].numpy()
    return phase_spread(y, g.scale, 12)


def _randomised(phase_dc: bool, seed: int) -> MSTGenerator:
    torch.manual_seed(seed)
    g = MSTGenerator(4, 3, feat_ch=8, ch=16, n_blocks=2, flow_ch=8, phase_dc=phase_dc).eval()
    # the sub-pixel convolutions start at zero (no grid at all): give them weights that make one
    for conv in (g.upsample[2], g.refine.out):
        torch.nn.init.normal_(conv.weight, std=0.05)
        torch.nn.init.normal_(conv.bias, std=0.05)
    return g


def test_equalised_sub_pixel_convolutions_keep_a_flat_input_flat():
    plain = _randomised(False, 0)
    assert _phase_spread(plain) > 5, "an unconstrained head makes a grid"
    g = _randomised(True, 0)
    g.equalise_phases()
    assert _phase_spread(g) < 1e-3
    assert _phase_spread(g, 0.9) < 1e-3
    # linear: an average of projected weights (the EMA) is projected too
    other = _randomised(True, 1)
    other.equalise_phases()
    for p, q in zip(g.parameters(), other.parameters()):
        p.data.mul_(0.5).add_(0.5 * q.data)
    assert _phase_spread(g) < 1e-3
    # without phase_dc the call changes nothing
    before = [p.clone() for p in plain.parameters()]
    plain.equalise_phases()
    assert all(torch.equal(a, b) for a, b in zip(before, plain.parameters()))


def test_task_arithmetic_blend_on_a_base_from_before_the_projection_stays_projected():
    from mstgan.training.interpolate import blend, blended, same_shapes, transplant

    fid, perc = _randomised(True, 1), _randomised(True, 2)
    for g in (fid, perc):
        g.equalise_phases()
    base = _randomised(False, 3)
    moved = transplant(fid.state_dict(), perc.state_dict(), base.state_dict())
    plain = _randomised(False, 4)
    plain.load_state_dict(blend(fid.state_dict(), moved, 0.7))
    assert _phase_spread(plain) > 0.5, "the base's grid comes along with an unprojected blend"
    g = _randomised(True, 4)
    blended(g, fid.state_dict(), moved, 0.7)
    assert _phase_spread(g) < 0.01
    assert same_shapes({"n_frames": 7, "phase_dc": True}) == same_shapes({"n_frames": 7})


@pytest.mark.parametrize("name", ["mstgan-x4-perceptual", "mstgan-x4-real", "mstgan-x4-fidelity"])
@pytest.mark.parametrize("precision", ["", "-int8"])
def test_shipped_x4_models_have_no_dot_grid(name, precision):
    f = MODELS / f"{name}{precision}.onnx"
    assert phase_range(str(f), 0.0) < 0.1, f
    assert phase_range(str(f), 0.01) < 0.15, f
