"""The implicit-reward modes of `DPOScorer` (see scorer.py), apart so the CLI lists them without importing torch."""

MODES = ("reference", "sum", "mean")
