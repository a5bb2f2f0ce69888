"""Evaluation and measurement: Vid4, the GStreamer comparison, benchmarks, FLOPs, profiles."""
