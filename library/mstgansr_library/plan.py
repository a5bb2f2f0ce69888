"""Where a file is cut: chunks that start at keyframes, with the frames of context each needs.
No I/O; unit-tested in ``tests/test_library.py``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# frames of context on each side: (T-1)/2 for the largest window shipped (T=11), so every model's
# window at a chunk's edge sees the frames it sees in an unchunked run
CONTEXT = 5


def context_for(window: int | None) -> int:
    """Context for a model of ``window`` frames (a user's ``--model``); the bundled ones need at
    most ``CONTEXT``."""
    return CONTEXT if window is None else max(CONTEXT, (window - 1) // 2)


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # first frame written
    end: int  # one past the last frame written
    read_from: int  # first frame fed to the element (context included)
    read_to: int  # one past the last frame fed

    @property
    def lead(self) -> int:
        """Frames fed before the first written one."""
        return self.start - self.read_from

    @property
    def frames(self) -> int:
        return self.end - self.start

    def to_dict(self) -> dict:
        return asdict(self)


def plan(keyframes: list[int], n_frames: int, min_frames: int, context: int = CONTEXT) -> list[Chunk]:
    """Chunks of at least ``min_frames`` (the last may be shorter) that start at keyframes;
    frame 0 always starts one. ``keyframes`` are frame indices."""
    if n_frames <= 0:
        return []
    starts = [0]
    for k in sorted(set(keyframes)):
        if 0 < k < n_frames and k - starts[-1] >= min_frames:
            starts.append(k)
    ends = starts[1:] + [n_frames]
    return [
        Chunk(i, s, e, max(0, s - context), min(n_frames, e + context))
        for i, (s, e) in enumerate(zip(starts, ends))
    ]
