"""Accuracy per subset (a record's `subset`/`category`), aggregated the RewardBench way.

RewardBench (Lambert et al. 2024): a section's score is the mean of its subsets' accuracies weighted by their
number of prompts; the overall score is the plain mean of the sections, so a large section does not drown the
others. Which subsets form a section comes from a JSON/YAML mapping `{section: [subset, ...]}`; without one, and
for subsets the mapping leaves out, every subset is its own section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from rewardkit.errors import RewardkitError

if TYPE_CHECKING:  # scored.py imports the model (torch); `rewardkit eval` reads --sections before that loads
    from rewardkit.evaluation.scored import Pairs

NO_SUBSET = "(no subset)"


@dataclass(frozen=True)
class SubsetScore:
    accuracy: float
    num_prompts: int  # groups, the RewardBench weight
    num_comparisons: int

    def to_dict(self) -> dict:
        return asdict(self)


def subset_accuracy(pairs: Pairs) -> dict[str, SubsetScore]:
    """Accuracy over the decisive comparisons of each subset (ties in reward count half)."""
    names = np.asarray([s if s is not None else NO_SUBSET for s in pairs.subset], dtype=object)
    scores = {}
    for name in sorted(set(names[pairs.decisive])):
        mask = pairs.decisive & (names == name)
        scores[name] = SubsetScore(
            accuracy=float(pairs.outcome[mask].mean()),
            num_prompts=len(np.unique(pairs.group[mask])),
            num_comparisons=int(mask.sum()),
        )
    return scores


def section_scores(
    subsets: Mapping[str, SubsetScore], sections: Mapping[str, Sequence[str]] | None = None
) -> tuple[dict[str, float], float]:
    """(score per section, overall score): prompt-weighted mean within a section, plain mean across sections."""
    members: dict[str, list[str]] = {}
    placed: set[str] = set()
    for section, names in (sections or {}).items():
        present = [name for name in names if name in subsets]
        if present:
            members[section] = present
            placed.update(present)
    for name in subsets:
        if name not in placed:
            members[name] = [name]
    scores = {}
    for section, names in members.items():
        weights = np.asarray([subsets[n].num_prompts for n in names], dtype=np.float64)
        scores[section] = float(np.average([subsets[n].accuracy for n in names], weights=weights))
    overall = float(np.mean(list(scores.values()))) if scores else float("nan")
    return scores, overall


def load_sections(path: str | Path) -> dict[str, list[str]]:
    """Read `{section: [subset, ...]}` from a JSON or YAML file (JSON is YAML, so one parser reads both)."""
    path = Path(path)
    try:
        mapping = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise RewardkitError(f"could not read the sections file {path}: {error}") from error
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(s, str) for s in v) for k, v in mapping.items()
    ):
        raise RewardkitError(f"{path}: expected a mapping of section name to a list of subset names")
    seen: dict[str, str] = {}
    for section, names in mapping.items():
        for name in names:
            if name in seen:
                raise RewardkitError(f"{path}: subset {name!r} is in both {seen[name]!r} and {section!r}")
            seen[name] = section
    return mapping
