"""Training loop, checkpoint selection, network interpolation."""
