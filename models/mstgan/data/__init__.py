"""Training data: clips, photos, degradations (BI, real-world), samplers."""
