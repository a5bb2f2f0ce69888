"""Where things are: the ``models/`` folder (models, checkpoints, caches, runs), the repository,
its test fixtures and the shared data beside it."""

from pathlib import Path

MODELS = Path(__file__).resolve().parents[1]
REPO = MODELS.parent
FIXTURES = REPO / "tests" / "fixtures"
SHARED = REPO.parent / "shared" / "data"
CACHE = MODELS / ".cache"
