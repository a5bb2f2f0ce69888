"""One-question experiments, apart from the product's tools: the equal-budget ablation, flow,
tile, block-edge and dot-grid checks, and the operator profile. Each answers one question the
lab notebook (``lab/NOTEBOOK.md``) asks, with the command and log (``lab/logs/``) it cites;
logs written before they moved here, 2026-12-06, name them ``mstgan.tools.<name>``."""
