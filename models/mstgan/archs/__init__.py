"""Network architectures (pure nn.Module, the export targets)."""
