"""Losses, each with its weight, and the LPIPS network."""
