"""The fresh-machine path: setup names what it cannot install itself, and `make test` needs no
shared data."""

import os
import shutil
import subprocess
from pathlib import Path

from mstgan.paths import REPO


def test_setup_names_each_missing_prerequisite_and_how_to_get_it(tmp_path):
    # a PATH with the shell tools setup uses, but no Rust, C compiler or Python
    for tool in ("bash", "sed", "awk", "sort", "head", "printf", "dpkg-query", "apt-get", "grep", "dirname"):
        found = shutil.which(tool)
        if found:
            (tmp_path / tool).symlink_to(found)
    r = subprocess.run(["bash", str(REPO / "scripts/setup.sh"), "--check"], capture_output=True, text=True,
                       env={**os.environ, "PATH": str(tmp_path)})  # fmt: skip
    assert r.returncode != 0
    assert "rustup" in r.stderr and "build-essential" in r.stderr and "python3" in r.stderr, r.stderr
    # and on this machine, which has them all, it passes
    ok = subprocess.run(["bash", str(REPO / "scripts/setup.sh"), "--check"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_repository_tests_read_no_shared_data(request):
    """`make test` deselects the tests marked `shared`: every test that asks for the shared data
    fixture carries the marker, so none of the others can stop at a missing ../shared."""
    session = request.session
    for item in session.items:
        if "shared_data" in item.fixturenames:
            assert item.get_closest_marker("shared") is not None, item.nodeid


def test_setup_never_points_at_a_file_that_does_not_exist():
    text = (REPO / "scripts/setup.sh").read_text()
    for ref in ("scripts/env.sh",):
        assert ref not in text or (REPO / ref).exists(), ref
    assert Path(REPO / "Makefile").read_text().count("setup.sh --demo") == 1
