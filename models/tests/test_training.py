import numpy as np
import pytest
import torch

from mstgan.data import clips as D
from mstgan.archs.mstgan_arch import FastGenerator, MSTGenerator
from mstgan.training.train import Trainer, lift_window, load_options

SEQS = ["sintel_raft/market", "toflow_vimeo/basketball"]
TINY = {"n_frames": 3, "feat_ch": 8, "ch": 16, "n_blocks": 2, "flow_ch": 8, "refine_blocks": 1}


def tiny_opts(**kw):
    base = {"scale": 4, "arch": TINY, "batch": 2, "lr_patch": 12, "warmup_steps": 1, "total_steps": 1000,
            "lr_g": 1e-3, "w_perceptual": 0.01, "perceptual_items": 1, "val_per_seq": 1, "val_hr_crop": 48,
            "val_every": 1000, "log_every": 1000, "ckpt_every": 1000, "instance_noise_steps": 10}  # fmt: skip
    base.update(kw)
    return load_options(None, base)


def make(tmp_path, shared_data, **kw):
    return Trainer(tiny_opts(**kw), tmp_path, "cpu", shared_data / "train", SEQS, tmp_path / "cache")


def fixed_batch(trainer):
    batch = trainer.sampler.sample(trainer.opt["batch"])
    trainer.sampler.sample = lambda n: batch


def test_stage1_steps_reduce_the_loss(tmp_path, shared_data):
    tr = make(tmp_path, shared_data, stage=1)
    fixed_batch(tr)
    first = tr.train_step()["total"]
    for _ in range(25):
        last = tr.train_step()["total"]
    assert last < 0.8 * first, (first, last)


def test_fast_tier_trains_and_its_features_stay_alive(tmp_path, shared_data):
    arch = {"type": "fast", "n_frames": 3, "ch": 16, "n_blocks": 1}
    tr = make(tmp_path, shared_data, stage=1, arch=arch, scale=2, w_perceptual=0.0, lr_g=1e-3)
    fixed_batch(tr)
    first = tr.train_step()["total"]
    for _ in range(40):
        last = tr.train_step()["total"]
    assert last < 0.9 * first, (first, last)
    # the failure seen once: a dead head (every feature <= 0) leaves the output at bicubic
    lr_in, _ = tr.sampler.sample(2)
    n, t, c, h, w = lr_in.shape
    with torch.no_grad():
        feats = tr.G.head(lr_in.reshape(n, t * c, h, w))  # a 6x6 stride-2 conv of the pixels
    assert (feats > 0).float().mean() > 0.05


def test_stage2_steps_run_and_reduce_the_generator_loss(tmp_path, shared_data):
    tr = make(tmp_path, shared_data, stage=2, w_adv=1e-3)
    fixed_batch(tr)
    logs = tr.train_step()
    for k in ("temporal", "flow_consistency", "adversarial", "d_loss"):
        assert k in logs and torch.isfinite(torch.tensor(logs[k]))
    first = logs["pixel"]
    for _ in range(25):
        logs = tr.train_step()
    assert logs["pixel"] < first, (first, logs["pixel"])


@pytest.mark.parametrize("device_sampler", [False, True])
def test_resume_continues_the_same_run(tmp_path, shared_data, device_sampler):
    straight = make(tmp_path / "a", shared_data, stage=1, device_sampler=device_sampler)
    for _ in range(4):
        straight.train_step()
    first = make(tmp_path / "b", shared_data, stage=1, device_sampler=device_sampler)
    for _ in range(2):
        first.train_step()
    ckpt = first.save()
    resumed = make(tmp_path / "c", shared_data, stage=1, device_sampler=device_sampler)
    resumed.load(ckpt)
    for _ in range(2):
        resumed.train_step()
    assert resumed.step == straight.step == 4
    for (n, a), b in zip(straight.G.state_dict().items(), resumed.G.state_dict().values()):
        assert torch.equal(a, b), n


def test_validation_and_selection_write_best(tmp_path, shared_data):
    tr = make(tmp_path, shared_data, stage=1)
    val = tr.validate()
    assert 5 < val["val_psnr"] < 60 and 0 <= val["val_lpips"] < 1.5
    tr.check_and_select(val)
    assert (tmp_path / "best.pt").exists()


def test_divergence_is_detected(tmp_path, shared_data):
    import pytest

    from mstgan.training.train import TrainingDiverged

    tr = make(tmp_path, shared_data, stage=1, divergence_patience=2)
    tr.check_and_select({"val_psnr": 30.0, "val_lpips": 0.2})
    tr.check_and_select({"val_psnr": 20.0, "val_lpips": 0.5})
    with pytest.raises(TrainingDiverged, match="collapse"):
        tr.check_and_select({"val_psnr": 20.0, "val_lpips": 0.5})


def test_resume_on_other_validation_crops_resets_the_best(tmp_path, shared_data):
    first = make(tmp_path / "a", shared_data, stage=1)
    first.check_and_select({"val_psnr": 40.0, "val_lpips": 0.1})
    ckpt = first.save()
    same = make(tmp_path / "b", shared_data, stage=1)
    same.load(ckpt)
    assert same.best["psnr"] == 40.0
    other = make(tmp_path / "c", shared_data, stage=1, val_hr_crop=24)
    other.load(ckpt)
    assert other.best["psnr"] < 0, "a best measured on other crops must not block selection"


def test_time_annealed_schedule_ends_at_lr_min(tmp_path, shared_data, monkeypatch):
    import itertools

    from mstgan.training import train as train

    tr = make(tmp_path, shared_data, stage=1, lr_min=1e-5)
    # a clock that moves 0.2 s per reading: the run lasts a few steps however loaded the machine is
    ticks = itertools.count()
    monkeypatch.setattr(train.time, "time", lambda: 1e9 + 0.2 * next(ticks))
    tr.fit(max_minutes=0.04, anneal_in_time=True)
    assert tr.step > 1 and tr.progress() == 1.0
    assert tr._set_lr() == 1e-5


def test_device_sampler_cuts_matching_clips():
    # HR = LR upsampled by pixel repetition, each frame offset by its index: every flip, transpose
    # and temporal reversal commutes with that, so HR[::s, ::s] must equal the clip's centre LR frame
    s, n_lr = 4, 5
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 200, size=(9, 20, 24, 3)).astype(np.uint8) + np.arange(9, dtype=np.uint8)[:, None, None, None] * 6
    hr = lr.repeat(s, 1).repeat(s, 2)
    base = D.ClipSampler([D.Sequence("a", hr, lr)], s, n_lr, 1, 8, seed=1)
    sampler = D.DeviceClipSampler(base, "cpu")
    x, y = sampler.sample(32)
    assert x.shape == (32, n_lr, 3, 8, 8) and y.shape == (32, 1, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(y[:, 0, :, ::s, ::s], x[:, n_lr // 2])
    # the augmentations happen: some clips run backwards, some are flipped
    first_last = (x[:, 0] - x[:, -1]).mean((1, 2, 3))
    assert (first_last > 0).any() and (first_last < 0).any()


def test_texture_tries_draw_crops_from_the_detailed_part_of_a_clip():
    # left half flat grey, right half noise: uniform crops land in the flat half a fair share of the
    # time, texture-chosen ones (both samplers) almost never; synthetic clips are not re-drawn
    s, n_lr, p = 2, 3, 8
    rng = np.random.default_rng(0)
    lr = np.full((6, 16, 64, 3), 128, np.uint8)
    lr[:, :, 32:] = rng.integers(0, 256, size=(6, 16, 32, 3))
    hr = lr.repeat(s, 1).repeat(s, 2)

    def flat_share(sampler):
        x, _ = sampler.sample(200)
        return float((x.flatten(1).std(1) == 0).float().mean())

    seq = D.Sequence("a", hr, lr)
    uniform = flat_share(D.ClipSampler([seq], s, n_lr, 1, p, seed=3))
    chosen = flat_share(D.ClipSampler([seq], s, n_lr, 1, p, seed=3, texture_tries=4))
    on_device = flat_share(D.DeviceClipSampler(D.ClipSampler([seq], s, n_lr, 1, p, seed=3, texture_tries=4), "cpu"))
    synthetic = flat_share(D.ClipSampler([D.Sequence("b", hr, lr, synthetic=True)], s, n_lr, 1, p, seed=3, texture_tries=4))
    assert uniform > 0.25 and synthetic > 0.25
    assert chosen < 0.05 and on_device < 0.05
    with pytest.raises(ValueError, match="texture_tries"):
        D.ClipSampler([seq], s, n_lr, 1, p, texture_tries=0)


def test_longer_window_lifted_from_a_shorter_one_computes_the_same():
    arch = {**TINY, "n_frames": 3}
    short = MSTGenerator(4, **arch).eval()
    long = MSTGenerator(4, **{**arch, "n_frames": 5}).eval()
    own = long.state_dict()
    take = {k: v for k, v in short.state_dict().items() if own[k].shape == v.shape}
    take.update(lift_window(own, short.state_dict()))
    assert set(take) == set(own)
    long.load_state_dict(take)
    x = torch.rand(1, 5, 3, 16, 20)
    with torch.no_grad():
        assert torch.allclose(short(x[:, 1:4]), long(x), atol=1e-5)


def test_model_grown_with_the_coarse_context_starts_as_the_smaller_one_and_trains_it(tmp_path, shared_data):
    small = MSTGenerator(4, **TINY).eval()
    torch.save({"ema": small.state_dict()}, tmp_path / "small.pt")
    t = make(tmp_path, shared_data, arch={**TINY, "context_blocks": 1, "context_ch": 8})
    fresh = t.init_generator(tmp_path / "small.pt")
    assert fresh and all(k.startswith("fusion.context.") for k in fresh)
    x = torch.rand(1, 3, 3, 16, 20)
    with torch.no_grad():
        assert torch.allclose(small(x), t.G.eval()(x), atol=1e-6)
    inner = t.G.fusion.context.inp[0].weight.detach().clone()
    t.G.train()
    for _ in range(3):
        t.train_step()
    assert t.G.fusion.context.out.weight.abs().sum() > 0
    assert not torch.equal(inner, t.G.fusion.context.inp[0].weight)


def test_fast_model_grown_by_a_block_starts_as_the_smaller_one_and_trains_it(tmp_path, shared_data):
    arch = {"type": "fast", "n_frames": 3, "ch": 16, "n_blocks": 1, "fold": 1}
    small = FastGenerator(4, **{k: v for k, v in arch.items() if k != "type"}).eval()
    for p in small.parameters():  # trained-looking weights: the output conv is not the zero it starts at
        torch.nn.init.normal_(p, std=0.05)
    torch.save({"ema": small.state_dict()}, tmp_path / "small.pt")
    t = make(tmp_path, shared_data, arch={**arch, "n_blocks": 2, "inner": [16, 4]}, w_perceptual=0.0)
    fresh = t.init_generator(tmp_path / "small.pt")
    assert fresh and all(k.startswith("body.1.") for k in fresh)
    x = torch.rand(1, 3, 3, 16, 20)
    with torch.no_grad():
        assert torch.allclose(small(x), t.G.eval()(x), atol=1e-6)
    t.G.train()
    for _ in range(3):
        t.train_step()
    assert t.G.body[1].body[2].weight.abs().sum() > 0


def test_real_world_degradation_trains_on_compressed_versions(tmp_path, shared_data):
    tr = make(tmp_path, shared_data, stage=1, degradation="real", real_versions=1)
    names = [s.name for s in tr.sampler.seqs]
    assert any("+qp" in n for n in names) and any("+qp" not in n for n in names), names
    # validation sees the held-out clip compressed at the fixed QP, not the clean frames
    clean = make(tmp_path / "bi", shared_data, stage=1)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(tr.val, clean.val))
    assert np.isfinite(tr.train_step()["total"])
    with pytest.raises(ValueError, match="degradation must be"):
        make(tmp_path / "bad", shared_data, stage=1, degradation="blur")


def test_bf16_and_channels_last_steps_train_like_fp32(tmp_path, shared_data):
    # the speed settings of mstgan.tools.train_speed: same losses within bf16's precision, and
    # the weights stay float32 (autocast changes the compute, not what is stored)
    tr = make(tmp_path, shared_data, stage=1)
    fixed_batch(tr)
    start = tr.save("start.pt")
    fp32 = [float(tr.train_step()["total"]) for _ in range(6)]
    tr.load(start)
    tr.set_speed(amp_bf16=True, channels_last=True, compile_=False)
    bf16 = [float(tr.train_step()["total"]) for _ in range(6)]
    assert all(p.dtype == torch.float32 for p in tr.G.parameters())
    assert np.allclose(fp32, bf16, rtol=0.05), (fp32, bf16)
    assert bf16[-1] < bf16[0], bf16


def test_bf16_stage2_steps_update_generator_and_discriminator(tmp_path, shared_data):
    # stage 2 under bf16 autocast: the discriminator's own step takes the bf16 output in fp32
    tr = make(tmp_path, shared_data, stage=2, w_adv=1e-3)
    tr.set_speed(amp_bf16=True, channels_last=True, compile_=False)
    fixed_batch(tr)
    d_before = [p.detach().clone() for p in tr.D.parameters()]
    logs = [tr.train_step() for _ in range(3)]
    assert all(np.isfinite(float(x["total"])) and np.isfinite(float(x["d_loss"])) for x in logs), logs
    assert all(p.dtype == torch.float32 for p in [*tr.G.parameters(), *tr.D.parameters()])
    assert any(not torch.equal(a, b) for a, b in zip(d_before, tr.D.parameters()))


def test_phase_grid_loss_sees_a_period_scale_grid_and_not_content():
    from mstgan.losses.video_losses import PhaseGridLoss

    torch.manual_seed(0)
    hr = torch.rand(8, 3, 64, 64)
    loss = PhaseGridLoss(1.0, 4)
    content = hr + 0.01 * torch.randn_like(hr)  # an error with no period
    dots = torch.zeros(4, 4)
    dots[1, 2] = 2 / 255  # a dot of two code values every 4 px, as the x4 GAN models showed
    gridded = content + dots.repeat(16, 16)
    assert loss(gridded, hr) > 5 * loss(content, hr)
    # its gradient removes the grid
    x = gridded.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=10.0)
    for _ in range(150):
        opt.zero_grad()
        loss(x, hr).backward()
        opt.step()
    assert loss(x, hr) < 0.5 * loss(content, hr) + 1e-5


def test_stage2_step_with_the_grid_penalties_logs_them(tmp_path, shared_data):
    tr = make(tmp_path, shared_data, stage=2, w_adv=1e-3, w_grid=1.0, w_flat=1.0)
    fixed_batch(tr)
    logs = tr.train_step()
    for k in ("grid", "flat"):
        assert k in logs and np.isfinite(float(logs[k])) and float(logs[k]) >= 0, logs


def test_l2_pixel_loss_trains_without_the_perceptual_network(tmp_path, shared_data):
    from mstgan.training.train import pixel_loss

    with pytest.raises(ValueError, match="pixel_loss must be"):
        pixel_loss("l1", 1.0)
    pred, target = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1)
    assert float(pixel_loss("l2", 2.0)(pred, target)) == pytest.approx(2 * 0.01)
    tr = make(tmp_path, shared_data, stage=1, pixel_loss="l2", w_pixel=16.0, w_perceptual=0.0)
    fixed_batch(tr)
    # with no weight the VGG network must not run at all (it dominates a CPU step)
    tr.perceptual.forward = lambda *a: pytest.fail("LPIPS-VGG ran with w_perceptual 0")
    first = tr.train_step()["pixel"]
    for _ in range(25):
        last = tr.train_step()["pixel"]
    assert last < 0.8 * first, (first, last)
