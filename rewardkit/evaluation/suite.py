"""Every evaluation metric of one dataset, as one JSON-ready dict: what `rewardkit eval` prints and reports.

    scored = score_dataset(model, load_preferences("test.jsonl"))
    results = summarize(scored, EvalOptions(sections=load_sections("sections.yaml")))

Keys: the `PairwiseMetrics` fields and `truncated` (as the plain `eval` always wrote), `accuracy_ci`, `calibration`,
`length`, and when the data has them `subsets`/`sections`/`overall` (subset labels), `ranking` (K >= 3 responses)
and `agreement` (several labels per pair).
"""

from __future__ import annotations

from rewardkit.data import PreferenceDataset, split_dataset
from rewardkit.errors import RewardkitError
from rewardkit.evaluation.agreement import agreement_ceiling
from rewardkit.evaluation.bootstrap import bootstrap_mean
from rewardkit.evaluation.calibration import calibration, fit_temperature
from rewardkit.evaluation.length import length_bias
from rewardkit.evaluation.options import EvalOptions
from rewardkit.evaluation.ranking import ranking_metrics
from rewardkit.evaluation.scored import ScoredDataset, score_dataset
from rewardkit.evaluation.subsets import section_scores, subset_accuracy
from rewardkit.model.reward_model import RewardModel


def evaluate_dataset(model: RewardModel, dataset: PreferenceDataset, options: EvalOptions | None = None) -> dict:
    options = options or EvalOptions()
    return summarize(score_dataset(model, dataset, options.batch_size, options.progress), options)


def summarize(scored: ScoredDataset, options: EvalOptions | None = None) -> dict:
    options = options or EvalOptions()
    pairs = scored.pairs()
    decisive = pairs.decisive
    interval = bootstrap_mean(pairs.outcome[decisive], pairs.cluster[decisive], options.bootstrap_samples,
                              options.confidence, options.seed)
    result = {**scored.metrics.to_dict(), "truncated": scored.num_truncated, "accuracy_ci": interval.to_dict()}
    if any(subset is not None for subset in pairs.subset):
        subsets = subset_accuracy(pairs)
        sections, overall = section_scores(subsets, options.sections)
        result |= {"subsets": {name: s.to_dict() for name, s in subsets.items()}, "sections": sections,
                   "overall": overall}
    ranking = ranking_metrics([g.comparisons for g in scored.groups], scored.rewards)
    if ranking is not None:
        result["ranking"] = ranking.to_dict()
    labelled = [i for i, labels in enumerate(pairs.annotator_labels) if labels is not None and len(labels) >= 2]
    if labelled:
        result["agreement"] = agreement_ceiling([pairs.annotator_labels[i] for i in labelled], pairs.outcome[labelled])
    result["calibration"] = calibration_report(scored, options)
    result["length"] = length_bias(scored)
    return result


def calibration_report(scored: ScoredDataset, options: EvalOptions) -> dict:
    """Calibration before and, with a temperature, after scaling; a fitted-here T is measured on other prompts."""
    temperature, source, measured = options.temperature, options.temperature_source, scored.pairs()
    if options.calibrate_fraction:
        if options.temperature is not None:
            raise RewardkitError("give either a temperature (--calibrate-on) or a calibration fraction, not both")
        rest, held_out = split_groups(scored, options.calibrate_fraction, options.seed)
        fit, measured = scored.pairs(held_out), scored.pairs(rest)
        temperature = fit_temperature(fit.difference, fit.prob)
        source = f"{len(held_out)} groups ({len(fit)} comparisons) held out of this dataset"
    before = calibration(measured.difference, measured.prob, 1.0, options.calibration_bins)
    after = None if temperature is None else calibration(
        measured.difference, measured.prob, temperature, options.calibration_bins)
    return {"temperature": temperature, "fitted_on": source, "before": before.to_dict(),
            "after": after.to_dict() if after else None}


def split_groups(scored: ScoredDataset, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(rest, held out) group indices; groups sharing a prompt stay on one side (`split_dataset`)."""
    try:
        _, held_out = split_dataset(PreferenceDataset(scored.groups, name=scored.name), fraction, seed)
    except ValueError as error:
        raise RewardkitError(f"cannot hold out a calibration split: {error}") from error
    chosen = {id(group) for group in held_out.groups}
    held = [i for i, group in enumerate(scored.groups) if id(group) in chosen]
    return [i for i, group in enumerate(scored.groups) if id(group) not in chosen], held


def fit_temperature_on(model: RewardModel, dataset: PreferenceDataset, batch_size: int = 32) -> tuple[float, int]:
    """(temperature, comparisons) fitted on a separate validation set (`--calibrate-on`)."""
    pairs = score_dataset(model, dataset, batch_size).pairs()
    return fit_temperature(pairs.difference, pairs.prob), len(pairs)

