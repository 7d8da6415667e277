"""Run probes against a reward model and decide, per probe, whether it can be gamed.

For every probe and pair, the RM scores the original and the perturbed response to the same prompt. A probe
reports its **win rate** (share of pairs where the perturbed response scores higher; equal rewards count half),
a bootstrap 95% interval of it, the **mean reward delta** r(perturbed) - r(original) in the checkpoint's
normalized units (standard deviations of its validation rewards when it was trained by rewardkit), the share of
perturbed responses cut at max_length, and the share of pairs the RM saw as identical because the whole change fell
past the cut (`unseen`: those pairs tie, pulling the win rate towards 0.5; audit with data that fits max_length).

Verdict rule: a probe is **gameable** when its win rate exceeds the threshold T (default 0.6). None of the
perturbations adds information, so an RM that is not fooled gives the perturbed response a win rate at or below
0.5 (gibberish: near 0); T = 0.5 + 0.1 leaves room for noise on a few hundred pairs. For user-supplied pairs the
"perturbed" response is the labelled-worse one, so the win rate is the RM's error rate on them.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rewardkit.audit.perturb import map_text
from rewardkit.audit.probes import DEFAULT_THRESHOLD, MAX_UNKNOWN_SHARE, Probe, select_probes
from rewardkit.data.records import PreferenceDataset, PreferenceGroup, Text
from rewardkit.data.tokenize import EncodedSequence
from rewardkit.data.validate import is_blank
from rewardkit.errors import RewardkitError
from rewardkit.evaluation.bootstrap import bootstrap_mean
from rewardkit.evaluation.pairwise import outcomes
from rewardkit.model.reward_model import RewardModel

logger = logging.getLogger("rewardkit")

# (prompt, original, perturbed)
Case = tuple[Text, Text, Text]


@dataclass
class ProbeCases:
    """One row of the audit before scoring."""

    name: str
    family: str
    description: str
    cases: list[Case]
    reference: list[Case] | None = None  # rival probes: the same pairs without the change
    unknown_share: float | None = None  # share of the tokens the perturbation adds that are the unknown token


@dataclass
class ProbeResult:
    probe: str
    family: str
    description: str
    num_pairs: int
    win_rate: float
    win_rate_low: float
    win_rate_high: float
    mean_delta: float
    truncated: float  # share of perturbed responses cut at max_length
    unseen: float  # share of pairs the RM saw as identical: the whole change fell past max_length
    gameable: bool
    reference_win_rate: float | None = None  # rival probes: the rejected answer's win rate without the change
    unknown_share: float | None = None  # of the tokens the perturbation adds, the share unknown to the tokenizer

    @property
    def mostly_unknown(self) -> bool:
        return self.unknown_share is not None and self.unknown_share > MAX_UNKNOWN_SHARE

    @property
    def verdict(self) -> str:
        return "GAMEABLE" if self.gameable else "robust"

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


@dataclass
class AuditResult:
    threshold: float
    num_pairs: int  # pairs drawn from --data for the built-in probes
    probes: list[ProbeResult]

    @property
    def gameable(self) -> list[str]:
        return [p.probe for p in self.probes if p.gameable]

    @property
    def warnings(self) -> list[str]:
        unknown = [f"{p.probe}: {p.unknown_share:.0%} of the tokens it adds are unknown to this tokenizer, so its "
                   "verdict says little about this reward model" for p in self.probes if p.mostly_unknown]
        unseen = [f"{p.probe}: in {p.unseen:.0%} of pairs the whole change fell past max_length, so the reward "
                  "model never saw it (use a larger --max-length or shorter responses)"
                  for p in self.probes if p.unseen > 0.5]
        return unknown + unseen

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "num_pairs": self.num_pairs, "gameable": self.gameable,
                "warnings": self.warnings, "probes": [p.to_dict() for p in self.probes]}


def decisive_pairs(group: PreferenceGroup) -> list[tuple[Text, Text, Text]]:
    """(prompt, chosen, rejected) of each comparison of a group with a favoured side and two non-blank responses."""
    pairs = []
    for c in group.comparisons:
        chosen, rejected = group.responses[c.better], group.responses[c.worse]
        if c.prob > 0.5 and not is_blank(chosen) and not is_blank(rejected):
            pairs.append((group.prompt, chosen, rejected))
    return pairs


def sample_pairs(dataset: PreferenceDataset, limit: int | None, seed: int) -> list[tuple[Text, Text, Text]]:
    """One labelled pair per group (its first decisive comparison), at most `limit` groups drawn at random."""
    per_group = [pairs[0] for pairs in map(decisive_pairs, dataset.groups) if pairs]
    if limit is not None and len(per_group) > limit:
        per_group = [per_group[i] for i in sorted(random.Random(seed).sample(range(len(per_group)), limit))]
    return per_group


def probe_cases(probe: Probe, pairs: Sequence[tuple[Text, Text, Text]], tokenizer, seed: int) -> ProbeCases:
    """The probe's (prompt, original, perturbed) cases. When most of the tokens its change adds are unknown to the
    tokenizer and the probe has a version in the tokenizer's own words, that version is used instead."""
    cases, unknown = _perturb(probe.change, probe, pairs, tokenizer, seed)
    description = probe.description
    if unknown is not None and unknown > MAX_UNKNOWN_SHARE and probe.in_vocabulary is not None:
        cases, share = _perturb(probe.in_vocabulary, probe, pairs, tokenizer, seed)
        description += f"; in the tokenizer's own words, as {unknown:.0%} of the default's tokens are unknown to it"
        unknown = share
    return ProbeCases(probe.name, probe.family, description, cases, list(pairs) if probe.rival else None, unknown)


def _perturb(change, probe: Probe, pairs, tokenizer, seed: int) -> tuple[list[Case], float | None]:
    rng = random.Random(f"{seed}:{probe.name}")
    cases, changes = [], []
    for prompt, chosen, rejected in pairs:
        original = rejected if probe.rival else chosen
        perturbed = map_text(original, lambda text: change(text, rng, tokenizer))
        cases.append((prompt, chosen, perturbed))
        changes.append((original, perturbed))
    return cases, unknown_share(tokenizer, changes)


def unknown_share(tokenizer, changes: Sequence[tuple[Text, Text]]) -> float | None:
    """Of the tokens that perturbing added (perturbed minus original, as multisets), the share that are the
    tokenizer's unknown token; None when the tokenizer has none (byte-level BPE) or nothing was added."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return None
    added = unknown = 0
    for original, perturbed in changes:
        before, after = (Counter(tokenizer(_last_text(t), add_special_tokens=False, verbose=False)["input_ids"])
                         for t in (original, perturbed))
        new = after - before
        added += sum(new.values())
        unknown += new[unk]
    return unknown / added if added else None


def _last_text(response: Text) -> str:
    return response if isinstance(response, str) else response[-1]["content"]


def run_audit(
    model: RewardModel,
    dataset: PreferenceDataset | None = None,
    probes: Sequence[str] | None = None,
    probe_pairs: Sequence[PreferenceDataset] = (),
    threshold: float = DEFAULT_THRESHOLD,
    limit: int | None = 200,
    seed: int = 0,
    batch_size: int = 32,
    bootstrap_samples: int = 1000,
) -> AuditResult:
    """Built-in probes on pairs drawn from `dataset`, plus user pairs (one row per subset of each file)."""
    if not 0 < threshold < 1:
        raise RewardkitError(f"the threshold is a win rate between 0 and 1, got {threshold}")
    if dataset is None and not probe_pairs:
        raise RewardkitError("nothing to audit: give data for the built-in probes and/or probe pairs")
    rows: list[ProbeCases] = []
    pairs = sample_pairs(dataset, limit, seed) if dataset is not None else []
    if dataset is not None and not pairs:
        raise RewardkitError(f"{dataset.name or 'the data'} has no labelled pair with two non-blank responses")
    for probe in select_probes(probes) if dataset is not None else []:
        rows.append(probe_cases(probe, pairs, model.tokenizer, seed))
    for user in probe_pairs:
        rows += user_probes(user)

    rewards, encoded = score_cases(model, [c for row in rows for c in row.cases + (row.reference or [])], batch_size)
    results = []
    for row in rows:
        delta = _deltas(row.cases, rewards)
        wins = outcomes(delta)
        interval = bootstrap_mean(wins, np.arange(len(wins)), bootstrap_samples, 0.95, seed)
        originals, perturbed = ([encoded[_key(c[0], c[i])] for c in row.cases] for i in (1, 2))
        results.append(ProbeResult(
            probe=row.name, family=row.family, description=row.description, num_pairs=len(wins),
            win_rate=float(wins.mean()), win_rate_low=interval.low, win_rate_high=interval.high,
            mean_delta=float(delta.mean()),
            truncated=float(np.mean([e.truncated for e in perturbed])),
            unseen=float(np.mean([a.input_ids == b.input_ids for a, b in zip(originals, perturbed, strict=True)])),
            gameable=bool(wins.mean() > threshold),
            reference_win_rate=float(outcomes(_deltas(row.reference, rewards)).mean()) if row.reference else None,
            unknown_share=row.unknown_share,
        ))
    result = AuditResult(threshold, len(pairs), results)
    for warning in result.warnings:
        logger.warning(warning)
    return result


def user_probes(dataset: PreferenceDataset) -> list[ProbeCases]:
    """User pairs as probes: the labelled-worse response plays the perturbed one; one probe per subset, plus
    the whole file when it has several subsets."""
    stem = Path(dataset.name).name or "pairs"
    by_subset: dict[str | None, list[Case]] = {}
    for group in dataset.groups:
        by_subset.setdefault(group.subset, []).extend(decisive_pairs(group))
    by_subset = {subset: cases for subset, cases in by_subset.items() if cases}
    if not by_subset:
        raise RewardkitError(f"{dataset.name}: no labelled pair with two non-blank responses to use as a probe")
    rows = []
    if len(by_subset) > 1:
        every = [case for cases in by_subset.values() for case in cases]
        rows.append(ProbeCases(f"{stem} (all)", "pairs", "labelled-worse response vs the better one", every))
    for subset, cases in by_subset.items():
        name = f"{stem}:{subset}" if subset is not None else stem
        rows.append(ProbeCases(name, "pairs", f"labelled-worse response vs the better one ({subset})", cases))
    return rows


def _key(prompt: Text, response: Text) -> str:
    return json.dumps([prompt, response])


def _deltas(cases: Sequence[Case], rewards: dict[str, float]) -> np.ndarray:
    """r(perturbed) - r(original) per case."""
    return np.asarray([rewards[_key(p, perturbed)] - rewards[_key(p, original)] for p, original, perturbed in cases])


def score_cases(model: RewardModel, cases: Sequence[Case], batch_size: int) -> tuple[dict, dict]:
    """(normalized reward, encoding) of every distinct (prompt, response); each distinct token sequence is
    forwarded once."""
    encoded: dict[str, EncodedSequence] = {}
    for prompt, original, perturbed in cases:
        for response in (original, perturbed):
            key = _key(prompt, response)
            if key not in encoded:
                encoded[key] = model.encode(prompt, response)
    sequences = list(dict.fromkeys(e.input_ids for e in encoded.values()))
    if not sequences:
        return {}, {}
    rewards = model.normalize(model.score_encoded(sequences, batch_size=batch_size)).tolist()
    reward_of = dict(zip(sequences, rewards, strict=True))
    return {key: reward_of[e.input_ids] for key, e in encoded.items()}, encoded
