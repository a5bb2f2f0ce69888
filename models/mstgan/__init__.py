"""MST-GAN: multi-scale temporal GAN for video super-resolution (training side of mstgansr)."""

__version__ = "0.1.0"
