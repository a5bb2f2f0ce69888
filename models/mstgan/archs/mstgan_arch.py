"""MST-GAN networks: pure ``nn.Module``s, no training logic (these are the export targets).

Generator data flow for a window of T LR frames (centre = frame to upscale):

    frames --FeatureExtractor--> per-frame features at 3 pyramid levels (1, 1/2, 1/4)
    (centre, neighbour) --PyramidFlow--> flow per level, coarse to fine, residual-refined
    neighbour features --grid_sample(flow per level)--> aligned to the centre (MSFA)
    aligned features --TemporalFusion--> one feature map (coarse levels merged into fine)
    --Reconstruction (res blocks, depthwise-separable in the non-critical half)--> pixel shuffle
    + interpolated skip of the centre frame = base prediction
    base --DetailRefinement (looks at base vs centre again)--> + texture residual = output
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


class ResBlock(nn.Module):
    """conv-relu-conv with identity skip; ``separable`` uses depthwise 3x3 + pointwise 1x1 convs;
    ``inner`` narrows the middle (what structured pruning leaves of it)."""

    def __init__(self, ch: int, separable: bool = False, res_scale: float = 1.0, inner: int | None = None):
        super().__init__()

        def conv(ci, co):
            if separable:
                return nn.Sequential(nn.Conv2d(ci, ci, 3, 1, 1, groups=ci), nn.Conv2d(ci, co, 1))
            return nn.Conv2d(ci, co, 3, 1, 1)

        mid = inner or ch
        self.body = nn.Sequential(conv(ch, mid), nn.ReLU(inplace=True), conv(mid, ch))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


def flow_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp ``x`` [B,C,H,W] by ``flow`` [B,2,H,W] (pixels, x then y) with bilinear GridSample.

    Sampling position of output pixel p is p + flow(p); border padding so edges don't go black.
    """
    _, _, h, w = x.shape
    ys = torch.arange(h, dtype=x.dtype, device=x.device).view(1, h, 1).expand(1, h, w)
    xs = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, w).expand(1, h, w)
    gx = (xs + flow[:, 0]) * (2.0 / (w - 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / (h - 1)) - 1.0
    grid = torch.stack((gx, gy), dim=3)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


@torch.no_grad()
def equalise_phase_dc(conv: nn.Conv2d, scale: int) -> None:
    """Projects a sub-pixel convolution (3 * scale^2 outputs read by ``pixel_shuffle``) so that
    the scale x scale phases of each colour answer a flat input alike: equal kernel sums and
    biases across phases. A flat LR area then stays flat at HR, with no dot grid of period
    ``scale`` (the checkerboard-free condition of Sugawara et al., 2018). The constraint is
    linear, so averages of projected weights (the EMA) keep it."""
    s2 = scale * scale
    dc = conv.weight.sum(dim=(2, 3))  # [co * s2, cin]
    per = dc.view(-1, s2, dc.shape[1])
    delta = (per - per.mean(1, keepdim=True)).reshape_as(dc) / (conv.weight.shape[2] * conv.weight.shape[3])
    conv.weight.sub_(delta[..., None, None])
    b = conv.bias.view(-1, s2)
    b.copy_(b.mean(1, keepdim=True).expand_as(b))


def _resize_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def _downsample2(x: torch.Tensor) -> torch.Tensor:
    # ceil so odd sizes (e.g. 45x25) keep every pixel covered
    return F.avg_pool2d(x, 2, 2, ceil_mode=True)


def _cubic_weights(t: float, a: float = -0.75) -> list[float]:
    """Keys' cubic convolution weights of the 4 taps at -1, 0, 1, 2 for a sample at fraction t."""

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


class CubicUpsample(nn.Module):
    """``F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)`` as one fixed
    5x5 grouped convolution (edge-replicated) + pixel shuffle.

    Same values (float rounding aside), but onnxruntime's CPU Resize in cubic mode took a quarter
    of the whole model's time at x4, and a small convolution is the fastest op it has. Output
    pixel ``s*i + p`` samples source position ``i + (p + 0.5) / s - 0.5``, whose 4 cubic taps all
    lie within ``i-2 .. i+2``.
    """

    def __init__(self, scale: int, channels: int = 3, fold: int = 1):
        super().__init__()
        self.scale, self.channels, self.fold = scale, channels, fold
        taps = torch.zeros(scale, 5, dtype=torch.float64)
        for p in range(scale):
            pos = (p + 0.5) / scale - 0.5
            base = int(torch.floor(torch.tensor(pos)))
            for k, w in enumerate(_cubic_weights(pos - base)):
                taps[p, base - 1 + k + 2] += w
        kernel = taps[:, None, :, None] * taps[None, :, None, :]  # [s, s, 5, 5]: phase (py, px)
        self.register_buffer("weight", kernel.reshape(1, scale * scale, 5, 5).expand(channels, -1, -1, -1)
                             .reshape(channels * scale * scale, 1, 5, 5).float(), persistent=False)  # fmt: skip
        # fold f: one stride-f convolution gives the (s*f)^2 phases of each f x f block of pixels
        b, k = scale * fold, 4 + fold
        folded = torch.zeros(b, b, k, k, dtype=torch.float64)
        for i in range(fold):
            for j in range(fold):
                folded[i * scale : (i + 1) * scale, j * scale : (j + 1) * scale, i : i + 5, j : j + 5] = kernel
        folded = folded.reshape(1, b * b, k, k).expand(channels, -1, -1, -1).reshape(channels * b * b, 1, k, k)
        self.register_buffer("folded_weight", folded.float(), persistent=False)

    def forward(self, x: torch.Tensor, phases: bool = False) -> torch.Tensor:
        """``phases``: the output before its pixel shuffle by ``scale * fold``, on the ``fold``
        times coarser grid (x's sides a multiple of ``fold``), for a network whose detail has that
        layout: it adds the two and shuffles once."""
        x = F.pad(x, (2, 2, 2, 2), mode="replicate")
        if phases:
            return F.conv2d(x, self.folded_weight, stride=self.fold, groups=self.channels)
        return F.pixel_shuffle(F.conv2d(x, self.weight, groups=self.channels), self.scale)


class UnshuffledConv(nn.Conv2d):
    """A 3x3 convolution of the 2x2-unshuffled pixels (``4 * ch_in`` channels at half
    resolution), computed as the 6x6 stride-2 convolution of the pixels it equals: the same
    function without pixel-unshuffle's 6-D transpose (3.3 of the 27 ms of the previous x2 fast
    graph's FP32 window at 320x240, ``op_profile``, onnxruntime, 2 threads)."""

    def __init__(self, ch_in: int, ch_out: int):
        super().__init__(4 * ch_in, ch_out, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o, k = self.weight.shape[:2]
        # weight[o, c*4 + i*2 + j, dy, dx] reads pixel (2y + 2dy + i - 2, 2x + 2dx + j - 2)
        w = self.weight.reshape(o, k // 4, 2, 2, 3, 3).permute(0, 1, 4, 2, 5, 3).reshape(o, k // 4, 6, 6)
        return F.conv2d(x, w, self.bias, stride=2, padding=2)


class FeatureExtractor(nn.Module):
    """Per-frame features at 3 pyramid levels. Kept separate so it can be cached once per frame.

    Args:
        ch: channels at every level.
        n_blocks: residual blocks at full LR resolution.
    """

    def __init__(self, ch: int = 32, n_blocks: int = 1):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(3, ch, 3, 1, 1), _lrelu())
        self.body = nn.Sequential(*[ResBlock(ch) for _ in range(n_blocks)])
        self.down1 = nn.Sequential(nn.Conv2d(ch, ch, 3, 2, 1), _lrelu(), nn.Conv2d(ch, ch, 3, 1, 1), _lrelu())
        self.down2 = nn.Sequential(nn.Conv2d(ch, ch, 3, 2, 1), _lrelu(), nn.Conv2d(ch, ch, 3, 1, 1), _lrelu())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.body(self.head(x))
        f1 = self.down1(f0)
        f2 = self.down2(f1)
        return [f0, f1, f2]


class FlowLevel(nn.Module):
    """One pyramid level: predicts a flow residual from (centre, warped neighbour, current flow)."""

    def __init__(self, ch: int = 24):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(8, ch, 3, 1, 1), _lrelu(),
            nn.Conv2d(ch, ch, 3, 1, 1), _lrelu(),
            nn.Conv2d(ch, ch, 3, 1, 1), _lrelu(),
            nn.Conv2d(ch, 2, 3, 1, 1),
        )  # fmt: skip
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, ref: torch.Tensor, nbr: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        warped = flow_warp(nbr, flow)
        return flow + self.net(torch.cat((ref, warped, flow), 1))


class PyramidFlow(nn.Module):
    """Light coarse-to-fine optical flow on a 3-level image pyramid (SpyNet-like).

    Returns flows [full, 1/2, 1/4] that map the centre frame onto the neighbour, in pixels of
    each level.
    """

    def __init__(self, ch: int = 24, levels: int = 3):
        super().__init__()
        self.levels = nn.ModuleList([FlowLevel(ch) for _ in range(levels)])

    def forward(self, ref: torch.Tensor, nbr: torch.Tensor) -> list[torch.Tensor]:
        refs, nbrs = [ref], [nbr]
        for _ in range(len(self.levels) - 1):
            refs.append(_downsample2(refs[-1]))
            nbrs.append(_downsample2(nbrs[-1]))
        flows: list[torch.Tensor] = []
        flow = torch.zeros_like(refs[-1][:, :2])
        for lvl in range(len(self.levels) - 1, -1, -1):
            if flows:
                flow = _resize_like(flow, refs[lvl]) * 2.0
            flow = self.levels[lvl](refs[lvl], nbrs[lvl], flow)
            flows.insert(0, flow)
        return flows


class CoarseContext(nn.Module):
    """Wide residual blocks on the fused 1/4-resolution features: capacity and a large receptive
    field at 1/16 of the per-pixel cost of the same blocks at LR resolution. The output conv starts
    at zero, so a trained model grown with this branch computes the same function at first."""

    def __init__(self, ch: int, ctx_ch: int, n_blocks: int):
        super().__init__()
        self.inp = nn.Sequential(nn.Conv2d(ch, ctx_ch, 3, 1, 1), _lrelu())
        self.body = nn.Sequential(*[ResBlock(ctx_ch) for _ in range(n_blocks)])
        self.out = nn.Conv2d(ctx_ch, ch, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(self.body(self.inp(x)))


class TemporalFusion(nn.Module):
    """Fuses the T aligned feature maps per level, then merges coarse levels into the fine one."""

    def __init__(self, ch_in: int, ch_out: int, n_frames: int, context_blocks: int = 0, context_ch: int = 64):
        super().__init__()
        self.fuse = nn.ModuleList([nn.Conv2d(ch_in * n_frames, ch_out, 1) for _ in range(3)])
        self.merge2 = nn.Sequential(nn.Conv2d(ch_out, ch_out, 3, 1, 1), _lrelu())
        self.context = CoarseContext(ch_out, context_ch, context_blocks) if context_blocks else None
        self.merge1 = nn.Sequential(nn.Conv2d(2 * ch_out, ch_out, 3, 1, 1), _lrelu())
        self.merge0 = nn.Sequential(nn.Conv2d(2 * ch_out, ch_out, 3, 1, 1), _lrelu())
        self.act = _lrelu()

    def forward(self, aligned: list[torch.Tensor]) -> torch.Tensor:
        g0, g1, g2 = (self.act(f(a)) for f, a in zip(self.fuse, aligned))
        g2 = self.merge2(g2)
        if self.context is not None:
            g2 = self.context(g2)
        g1 = self.merge1(torch.cat((g1, _resize_like(g2, g1)), 1))
        return self.merge0(torch.cat((g0, _resize_like(g1, g0)), 1))


class DetailRefinement(nn.Module):
    """Re-examines the base prediction against the centre frame and adds back lost texture.

    Works at LR resolution: the HR base is folded with pixel-unshuffle so its residual against
    the (interpolated) centre is seen next to the fused features, at 1/s^2 of the HR cost.
    """

    def __init__(self, ch: int, scale: int, n_blocks: int = 2):
        super().__init__()
        self.scale = scale
        self.inp = nn.Sequential(nn.Conv2d(ch + 3 * scale * scale, ch, 1), _lrelu())
        self.body = nn.Sequential(*[ResBlock(ch, separable=True) for _ in range(n_blocks)])
        self.out = nn.Conv2d(ch, 3 * scale * scale, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, feat: torch.Tensor, base: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        residual = F.pixel_unshuffle(base - skip, self.scale)
        x = self.body(self.inp(torch.cat((feat, residual), 1)))
        return base + F.pixel_shuffle(self.out(x), self.scale)


class MSTGenerator(nn.Module):
    """MST-GAN generator: window of T LR frames -> centre frame at x``scale``.

    Args:
        scale: 2, 3 or 4.
        n_frames: window length T (odd).
        feat_ch: channels of the per-frame features.
        ch: channels of fusion / reconstruction.
        n_blocks: reconstruction residual blocks; the second half are depthwise-separable.
        flow_ch: channels of each flow pyramid level.
        refine_blocks: residual blocks of the detail-refinement module.
        skip_mode: interpolation of the centre-frame skip ("bicubic" or "bilinear").
        context_blocks: wide residual blocks at 1/4 resolution after fusion (0 = none).
        context_ch: their channels.
        align: ``False`` fuses the neighbours' features unwarped (no flow network): the ablation
            that tells what the alignment is worth.
        phase_dc: keep the two sub-pixel convolutions checkerboard-free
            (``equalise_phase_dc``); training re-projects after every step, loading once.
    Input ``[N, T, 3, H, W]`` RGB in [0, 1]; output ``[N, 3, s*H, s*W]``.
    """

    def __init__(self, scale: int = 4, n_frames: int = 5, feat_ch: int = 32, ch: int = 48,
                 n_blocks: int = 10, flow_ch: int = 24, refine_blocks: int = 2, skip_mode: str = "bicubic",
                 context_blocks: int = 0, context_ch: int = 64, align: bool = True, phase_dc: bool = False):  # fmt: skip
        super().__init__()
        assert n_frames % 2 == 1, "window must be odd so the centre frame is defined"
        self.scale, self.n_frames, self.skip_mode, self.phase_dc = scale, n_frames, skip_mode, phase_dc
        self.extractor = FeatureExtractor(feat_ch)
        self.flow = PyramidFlow(flow_ch) if align else None
        self.fusion = TemporalFusion(feat_ch, ch, n_frames, context_blocks, context_ch)
        n_full = (n_blocks + 1) // 2
        self.recon = nn.Sequential(
            *[ResBlock(ch) for _ in range(n_full)],
            *[ResBlock(ch, separable=True) for _ in range(n_blocks - n_full)],
        )
        self.upsample = nn.Sequential(
            nn.Conv2d(ch, ch, 3, 1, 1), _lrelu(), nn.Conv2d(ch, 3 * scale * scale, 3, 1, 1)
        )
        self.refine = DetailRefinement(ch, scale, refine_blocks)
        self.skip = CubicUpsample(scale) if skip_mode == "bicubic" else None

    def equalise_phases(self) -> None:
        """Applies the ``phase_dc`` constraint to the current weights (a no-op without it)."""
        if self.phase_dc:
            equalise_phase_dc(self.upsample[2], self.scale)
            equalise_phase_dc(self.refine.out, self.scale)

    def extract(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Per-frame features of ``frames`` [N, 3, H, W] at 3 levels: what an element caches."""
        return self.extractor(frames)

    def align(self, x: torch.Tensor, feats: list[torch.Tensor] | None = None):
        """Returns (aligned features per level, flows) where flows is [N, T-1, 2, H, W] at full LR res.

        ``feats``: the window's per-frame features, [N, T, C, h, w] per level, when they were
        computed (and cached) beforehand; ``None`` computes them here.
        """
        n, t, c, h, w = x.shape
        if feats is None:
            feats = [f.reshape(n, t, *f.shape[1:]) for f in self.extract(x.reshape(n * t, c, h, w))]
        mid = t // 2
        ref = x[:, mid]
        nbr_idx = [i for i in range(t) if i != mid]
        if self.flow is None:  # the no-alignment ablation: features fused where they lie
            flows = [x.new_zeros(n * (t - 1), 2, *f.shape[-2:]) for f in feats]
        else:
            refs = ref.unsqueeze(1).expand(n, t - 1, c, h, w).reshape(-1, c, h, w)
            flows = self.flow(refs, x[:, nbr_idx].reshape(-1, c, h, w))
        aligned = []
        for lvl, feat in enumerate(feats):
            f_nbr = feat[:, nbr_idx].reshape(n * (t - 1), *feat.shape[2:])
            if self.flow is not None:
                f_nbr = flow_warp(f_nbr, flows[lvl])
            warped = f_nbr.reshape(n, t - 1, *feat.shape[2:])
            parts = [warped[:, :mid], feat[:, mid : mid + 1], warped[:, mid:]]
            aligned.append(torch.cat(parts, 1).flatten(1, 2))
        return aligned, flows[0].reshape(n, t - 1, 2, h, w)

    def forward(self, x: torch.Tensor, return_flow: bool = False, feats: list[torch.Tensor] | None = None):
        aligned, flow = self.align(x, feats)
        feat = self.fusion(aligned)
        feat = self.recon(feat) + feat
        centre = x[:, self.n_frames // 2]
        # the network only has to learn the detail that the interpolated centre frame lacks
        if self.skip is not None:
            skip = self.skip(centre)
        else:
            skip = F.interpolate(centre, scale_factor=self.scale, mode=self.skip_mode, align_corners=False)
        base = F.pixel_shuffle(self.upsample(feat), self.scale) + skip
        out = self.refine(feat, base, skip)
        return (out, flow) if return_flow else out


class TemporalDiscriminator(nn.Module):
    """Judges a short sequence of K consecutive HR frames stacked on channels (not single frames).

    Args:
        n_frames: K frames per sequence.
        ch: base channels.
    Input ``[N, K, 3, H, W]``; output patch logits ``[N, 1, H/16, W/16]``.
    """

    def __init__(self, n_frames: int = 3, ch: int = 32):
        super().__init__()
        sn = nn.utils.spectral_norm

        def block(ci, co, stride):
            return [sn(nn.Conv2d(ci, co, 4 if stride == 2 else 3, stride, 1)), nn.LeakyReLU(0.2, True)]

        self.net = nn.Sequential(
            sn(nn.Conv2d(3 * n_frames, ch, 3, 1, 1)), nn.LeakyReLU(0.2, True),
            *block(ch, ch, 2), *block(ch, 2 * ch, 2), *block(2 * ch, 4 * ch, 2), *block(4 * ch, 4 * ch, 2),
            *block(4 * ch, 4 * ch, 1),
            sn(nn.Conv2d(4 * ch, 1, 3, 1, 1)),
        )  # fmt: skip

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.net(seq.flatten(1, 2))


class FastGenerator(nn.Module):
    """The CPU / live-camera tier: early fusion (the T frames stacked on channels, no flow), at
    half LR resolution (x2) or at LR resolution (x4), with convolutions wide enough that
    onnxruntime runs them near its peak.

    The MST generator with its channels cut to ~0.1 MFLOP per LR pixel ran 117 ms a window at
    320x240 on 2 cores (8-channel convolutions and GridSample are slow per FLOP); folding 2x2 pixels onto
    channels (pixel-unshuffle) keeps the same receptive field at a quarter of the positions.

    Args:
        scale: 2, 3 or 4.
        n_frames: window length T (odd).
        ch: channels of the body.
        n_blocks: residual blocks of the body.
        inner: the middle width of each block (``None``: ``ch``); set by structured pruning.
        fold: pixels folded onto channels per side before the body (2: half LR resolution; 1: the
            body at LR resolution, for x4 where a folded position already spans 8x8 output pixels).
    Input ``[N, T, 3, H, W]`` RGB in [0, 1]; output ``[N, 3, s*H, s*W]`` (the same contract).
    """

    def __init__(self, scale: int = 2, n_frames: int = 3, ch: int = 32, n_blocks: int = 2,
                 inner: list[int] | None = None, fold: int = 2):  # fmt: skip
        super().__init__()
        assert fold in (1, 2), "fold 1 (LR resolution) or 2 (half LR resolution)"
        assert n_frames % 2 == 1, "window must be odd so the centre frame is defined"
        inner = inner or [ch] * n_blocks
        assert len(inner) == n_blocks, "one inner width per block"
        self.scale, self.n_frames, self.fold = scale, n_frames, fold
        # leaky: a plain ReLU head died in the first steps (all features <= 0, output = bicubic)
        head = nn.Conv2d(3 * n_frames, ch, 3, 1, 1) if fold == 1 else UnshuffledConv(3 * n_frames, ch)
        self.head = nn.Sequential(head, _lrelu())
        self.body = nn.Sequential(*[ResBlock(ch, inner=k) for k in inner])
        self.out = nn.Conv2d(ch, 3 * (fold * scale) ** 2, 3, 1, 1)
        # starts as the bicubic skip: no large early gradients from a random detail image
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.skip = CubicUpsample(scale, fold=fold)

    def forward(self, x: torch.Tensor, return_flow: bool = False):
        n, t, c, h, w = x.shape
        xs = x.reshape(n, t * c, h, w)
        if self.fold > 1:
            # odd sizes: replicate one row / column so 2x2 folding covers every pixel, crop it after
            xs = F.pad(xs, (0, w % 2, 0, h % 2), mode="replicate")
        feat = self.head(xs)
        feat = self.body(feat) + feat
        centre = xs[:, (t // 2) * c : (t // 2 + 1) * c]
        # detail and bicubic phases added before one pixel shuffle, not after two at output size
        out = F.pixel_shuffle(self.out(feat) + self.skip(centre, phases=True), self.fold * self.scale)
        out = out[..., : self.scale * h, : self.scale * w]
        return (out, None) if return_flow else out


def generator_from_options(opt: dict) -> nn.Module:
    """The generator a training options dict describes (``scale`` and the ``arch`` keys; ``type``
    "fast" is the CPU tier): how training, export and interpolation all build it."""
    arch = dict(opt["arch"])
    if arch.pop("type", "mst") == "fast":
        return FastGenerator(scale=opt["scale"], **arch)
    return MSTGenerator(scale=opt["scale"], **arch)
