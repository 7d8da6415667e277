"""Layers run one way: data -> model -> training -> evaluation. Checked on the source (every import statement,
also those inside functions or under TYPE_CHECKING), since a lazy import would slip past an import-time check."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rewardkit"


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("path", sorted((PACKAGE / "training").glob("*.py")) + [PACKAGE / "distributed.py"],
                         ids=lambda path: path.name)  # fmt: skip
def test_training_and_distributed_do_not_import_evaluation(path):
    assert not {m for m in imported_modules(path) if m.startswith("rewardkit.evaluation")}


@pytest.mark.parametrize("name", ["prefix_sharing", "encoder_packing", "last_layer", "interface"])
def test_fast_paths_do_not_import_the_reward_model_that_imports_them(name):
    assert "rewardkit.model.reward_model" not in imported_modules(PACKAGE / "model" / f"{name}.py")


def test_model_layer_imports_nothing_above_it():
    higher = ("rewardkit.training", "rewardkit.evaluation", "rewardkit.rl", "rewardkit.serving", "rewardkit.demo")
    for path in (PACKAGE / "model").glob("*.py"):
        assert not {m for m in imported_modules(path) if m.startswith(higher)}, path.name
