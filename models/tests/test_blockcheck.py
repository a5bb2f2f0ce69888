import numpy as np

from mstgan.lab.blockcheck import blockiness


def test_blockiness_sees_block_edges():
    """Flat 16-px blocks of random grey have all their steps on the grid; smooth noise has none
    there in particular; a grid shifted by a pixel is not counted."""
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 255, (2, 4, 4, 1)).repeat(16, 1).repeat(16, 2).repeat(3, 3)
    assert blockiness(blocks.astype(np.uint8), 16) > 100
    shifted = np.roll(blocks, 1, axis=(1, 2))
    assert blockiness(shifted.astype(np.uint8), 16) < 1
    noise = rng.integers(0, 255, (2, 64, 64, 3)).astype(np.uint8)
    assert 0.8 < blockiness(noise, 16) < 1.2
