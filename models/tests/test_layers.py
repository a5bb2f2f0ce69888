"""The Python side's layers (issue #30): the building blocks (archs, data, metrics, losses) import
none of the rest; ``core`` only the blocks; ``deploy`` and ``training`` the blocks and ``core``
(and training may use deploy); the commands in ``tools`` any of those; the experiments in
``lab`` anything, and nothing imports them. Every import counts, the
ones inside functions too, so no package imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "mstgan"
BLOCKS = {"archs", "data", "metrics", "losses", "paths"}
ALLOWED = {
    **{b: BLOCKS for b in BLOCKS},
    "core": BLOCKS | {"core"},
    "deploy": BLOCKS | {"core", "deploy"},
    "training": BLOCKS | {"core", "deploy", "training"},
    "tools": BLOCKS | {"core", "deploy", "training", "tools"},
    "lab": BLOCKS | {"core", "deploy", "training", "tools", "lab"},
}


def layer(module: str) -> str:
    return module.split(".")[1] if module.startswith("mstgan.") else ""


def imports() -> list[tuple[str, str, int]]:
    """(importing layer, imported module, line) for every mstgan import in the package."""
    out = []
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(PKG.parent).with_suffix("")
        src_layer = rel.parts[1] if len(rel.parts) > 2 else rel.parts[-1]
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                if n.startswith("mstgan."):
                    out.append((f"{src_layer} ({rel})", n, node.lineno))
    return out


def test_every_import_goes_down_the_layers():
    bad = [f"{src}:{line} imports {mod}" for src, mod, line in imports()
           if layer(mod) not in ALLOWED.get(src.split()[0], set())]  # fmt: skip
    assert not bad, "\n".join(bad)


def test_the_layers_have_no_cycles():
    edges = {(src.split()[0], layer(mod)) for src, mod, _ in imports()}
    edges = {(a, b) for a, b in edges if a != b}
    for a, b in edges:
        assert (b, a) not in edges, f"{a} and {b} import each other"
