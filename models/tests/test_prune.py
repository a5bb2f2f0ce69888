import torch

from mstgan.archs.mstgan_arch import FastGenerator
from mstgan.training.prune import channel_importance, prune


def trained_like(seed=0):
    torch.manual_seed(seed)
    g = FastGenerator(2, 3, ch=16, n_blocks=2)
    torch.nn.init.normal_(g.out.weight, std=0.05)
    return g.eval()


def test_keeping_every_channel_is_the_same_network():
    g = trained_like()
    p, widths = prune(g, 1.0)
    assert widths == [16, 16]
    x = torch.rand(1, 3, 3, 20, 26)
    with torch.no_grad():
        assert torch.allclose(g(x), p(x), atol=1e-6)


def test_pruning_removes_the_weakest_channels_and_exactly_them():
    g = trained_like()
    with torch.no_grad():  # channel 5 of block 0 writes nothing: it must be the first to go
        g.body[0].body[2].weight[:, 5] = 0
    p, widths = prune(g, 0.75)
    assert widths == [12, 12]
    assert p.body[0].body[0].out_channels == 12 and p.body[0].body[2].in_channels == 12
    kept = torch.topk(channel_importance(g)[0], 12).indices
    assert 5 not in kept
    # the output loses only what the removed channels contributed: dropping a dead one is free
    g2 = trained_like()
    with torch.no_grad():
        g2.body[0].body[2].weight[:, :4] = 0
        g2.body[1].body[2].weight[:, :4] = 0
    p2, _ = prune(g2, 0.75)
    x = torch.rand(1, 3, 3, 20, 26)
    with torch.no_grad():
        assert torch.allclose(g2(x), p2(x), atol=1e-5)
    assert sum(t.numel() for t in p2.parameters()) < sum(t.numel() for t in g2.parameters())


def test_channels_that_never_fire_rank_last():
    g = trained_like()
    with torch.no_grad():  # large weights but a bias that keeps the ReLU shut
        g.body[1].body[0].bias[3] = -1e3
        g.body[1].body[0].weight[3] *= 5
    x = torch.rand(2, 3, 3, 20, 26)
    s = channel_importance(g, x)[1]
    assert int(torch.argmin(s)) == 3


def test_widths_round_to_the_kernel_multiple():
    g = trained_like()
    assert prune(g, 0.6, multiple=8)[1] == [8, 8]  # 9.6 channels -> one block of 8
    assert prune(g, 0.6)[1] == [10, 10]
