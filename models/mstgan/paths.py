"""Where things are: the ``models/`` folder (models, checkpoints, caches, runs), the repository
and the shared data beside it."""

from pathlib import Path

MODELS = Path(__file__).resolve().parents[1]
REPO = MODELS.parent
SHARED = REPO.parent / "shared" / "data"
CACHE = MODELS / ".cache"
