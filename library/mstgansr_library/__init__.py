"""Upscale a library of videos with the ``mstgansr`` element: each file split at keyframes into
chunks processed as Ray tasks with (T-1)/2 frames of context on both sides, resumable from a
manifest, joined with the source's audio and subtitles. ``python -m mstgansr_library --help``."""
