"""What a training run optimizes: data, collation, loss and metrics, bundled as an objective.

- `BradleyTerry` (outcome RMs): preference groups -> `collate_groups` (each distinct response forwarded once) ->
  `bradley_terry_loss` (pairs, K-wise groups, margins, soft labels, centering); metrics: pairwise accuracy, margin.
- `StepClassification` (process RMs): step-labelled solutions grouped by problem -> `collate_steps` (rewards read
  at the labelled steps' separators) -> `step_classification_loss` (hard labels up to the first error as in
  PRM800K / ProcessBench, soft Monte-Carlo labels as in Math-Shepherd); metrics: step accuracy, AUROC, log-loss.

The trainer (`trainer.py`) runs one loop for both: batches of whole groups, distributed data parallelism,
checkpoints and resume, LoRA, normalization after training, progress and metrics. `objective="auto"` picks
StepClassification when the first training file holds step data.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from rewardkit.data import PreferenceDataset, load_preferences, split_dataset
from rewardkit.data.collate import collate_groups, encode_dataset
from rewardkit.data.step_encoding import collate_steps, encode_step_dataset
from rewardkit.data.step_formats import STEP_FORMATS, is_step_data, load_steps
from rewardkit.data.steps import StepDataset, split_steps
from rewardkit.distributed import ShardedScorer, sharded_evaluate
from rewardkit.errors import RewardkitError
from rewardkit.model.metrics import score_encoded_dataset
from rewardkit.model.reward_model import RewardModel
from rewardkit.model.step_metrics import fit_platt, labelled_steps, step_metrics
from rewardkit.training.config import TrainConfig
from rewardkit.training.loss import bradley_terry_loss, step_classification_loss

logger = logging.getLogger("rewardkit")
OBJECTIVES = ("auto", "bradley_terry", "steps")

# The smallest scale normalization divides by. Bradley-Terry rewards whose spread is below 0.1 give any two
# responses a win probability of about 0.5 +- 0.04: nothing worth amplifying to unit spread.
MIN_REWARD_SCALE = 0.1


class Objective(ABC):
    name: str
    process: bool  # rewards at every step (a token-classification model with the step separator)
    unit: str  # what the loss counts, for the summary and throughput: "comparisons" or "steps"
    totals: tuple[str, ...]  # the additive totals `loss` returns beside the loss, summed over processes

    def __init__(self, config: TrainConfig):
        self.config = config

    # ---- data
    def load(self) -> tuple[Any, Any, str]:
        """(train, eval, what loading the training data read and skipped)."""
        config = self.config
        train_set = self._load_all(config.data)
        report = train_set.report.summary()
        if config.eval_data:
            return train_set, self._load_all(config.eval_data), report
        if config.eval_fraction == 0:
            return train_set, self._empty(), report
        return *self._split(train_set, config.eval_fraction, config.seed), report

    def _load_all(self, sources: Sequence[str]):
        datasets = [self._load(source) for source in sources]
        for dataset in datasets:
            if dataset.report.num_skipped or dataset.report.empty_responses:
                logger.warning("%s: %s", dataset.name, dataset.report.summary())
        if len(datasets) == 1:
            return datasets[0]
        report = sum((d.report for d in datasets[1:]), datasets[0].report)
        return type(datasets[0])([g for d in datasets for g in d.groups], report,
                                 name="+".join(d.name for d in datasets))

    @abstractmethod
    def _load(self, source: str): ...

    @abstractmethod
    def _empty(self): ...

    @abstractmethod
    def _split(self, dataset, fraction: float, seed: int) -> tuple[Any, Any]: ...

    @abstractmethod
    def num_labels(self, dataset) -> int:
        """Comparisons or labelled steps in a loaded dataset."""

    @abstractmethod
    def encode(self, dataset, model: RewardModel, training: bool): ...

    @abstractmethod
    def collate(self, groups: Sequence, pad_token_id: int) -> dict[str, Any]: ...

    # ---- loss and metrics
    @abstractmethod
    def loss(self, rewards: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, list[float]]:
        """(mean loss over the batch's groups, totals in the order of `self.totals`)."""

    @abstractmethod
    def metrics(self, totals: dict[str, float]) -> dict[str, float]:
        """Training metrics of a step from its totals (summed over micro-batches and processes)."""

    @abstractmethod
    def evaluate(self, model: RewardModel, encoded, batch_size: int) -> dict:
        """Validation metrics (with "accuracy"), the scoring shared by all launched processes."""

    @abstractmethod
    def fit_normalization(self, model: RewardModel, encoded, batch_size: int) -> list[str]:
        """Fit and set the model's reward normalization after training; returns warnings about it."""

    def learning_warnings(self, eval_metrics: dict | None) -> list[str]:
        """Warnings for a model whose validation metrics show it learned nothing."""
        return []


class BradleyTerry(Objective):
    name, process, unit = "bradley_terry", False, "comparisons"
    totals = ("correct", "margin", "comparisons")

    def _load(self, source: str) -> PreferenceDataset:
        config = self.config
        return load_preferences(source, format=config.format, on_error=config.on_error, columns=config.columns)

    def _empty(self) -> PreferenceDataset:
        return PreferenceDataset([], name="none")

    def _split(self, dataset, fraction, seed):
        return split_dataset(dataset, fraction, seed)

    def num_labels(self, dataset) -> int:
        return dataset.num_comparisons

    def encode(self, dataset, model, training):
        return encode_dataset(dataset, model.tokenizer, model.max_length)

    def collate(self, groups, pad_token_id):
        return collate_groups(groups, pad_token_id)

    def loss(self, rewards, batch):
        stats = bradley_terry_loss(rewards, batch, self.config.center_rewards_coefficient)
        pairs = stats.num_comparisons
        return stats.loss, [stats.accuracy.item() * pairs, stats.margin.item() * pairs, pairs]

    def metrics(self, totals):
        pairs = max(totals["comparisons"], 1)
        return {"accuracy": totals["correct"] / pairs, "margin": totals["margin"] / pairs}

    def evaluate(self, model, encoded, batch_size):
        return sharded_evaluate(model, encoded, batch_size).to_dict()

    def fit_normalization(self, model, encoded, batch_size):
        """Centre and scale rewards on the reference responses (InstructGPT's bias; default: the validation split).

        The scale is floored at MIN_REWARD_SCALE: a model whose rewards barely differ would otherwise have its noise
        blown up to unit spread (a scale of 0.0092 turned every out-of-sample reward into ~10).
        """
        rewards = torch.cat(score_encoded_dataset(ShardedScorer(model), encoded, batch_size=batch_size))
        spread = rewards.std().item() if rewards.numel() > 1 else 0.0
        model.set_normalization(rewards.mean().item(), max(spread, MIN_REWARD_SCALE))
        if spread >= MIN_REWARD_SCALE:
            return []
        return [f"the rewards barely differ (spread {spread:.4f} on the validation responses, below "
                f"{MIN_REWARD_SCALE}): the model separates almost nothing; normalization uses a scale of "
                f"{MIN_REWARD_SCALE} instead of blowing the spread up"]

    def learning_warnings(self, eval_metrics):
        if not eval_metrics or not eval_metrics["num_comparisons"]:
            return []
        accuracy, n = eval_metrics["accuracy"], eval_metrics["num_comparisons"]
        low, high = wilson_interval(accuracy, n)
        if low > 0.5:
            return []
        return [f"validation accuracy {accuracy:.3f} on {n} comparisons is not above chance (95% interval "
                f"[{low:.3f}, {high:.3f}]): train longer, raise --lr, or check the data"]


class StepClassification(Objective):
    name, process, unit = "steps", True, "steps"
    totals = ("correct", "decisive", "steps")

    def _load(self, source: str) -> StepDataset:
        config = self.config
        if config.format not in ("auto", *STEP_FORMATS):
            raise RewardkitError(f"--format {config.format} is not a step format; the steps objective reads "
                                 f"auto or one of: {', '.join(STEP_FORMATS)}")
        if config.columns:
            raise RewardkitError("--columns applies to preference data, not to step-labelled solutions")
        return load_steps(source, format=config.format, on_error=config.on_error, neutral=config.neutral_steps)

    def _empty(self) -> StepDataset:
        return StepDataset([], name="none")

    def _split(self, dataset, fraction, seed):
        return split_steps(dataset, fraction, seed)

    def num_labels(self, dataset) -> int:
        return dataset.num_labels

    def encode(self, dataset, model, training):
        # A causal decoder's rewards at the labelled steps do not depend on the steps after them: training leaves
        # those out. An encoder sees the whole solution, as it will when it is used.
        return encode_step_dataset(dataset, model.tokenizer, model.max_length, model.step_separator,
                                   through_last_label=training and model.is_decoder)

    def collate(self, groups, pad_token_id):
        return collate_steps(groups, pad_token_id, labelled_only=True)

    def loss(self, rewards, batch):
        stats = step_classification_loss(rewards, batch)
        decisive = int((batch["labels"][~batch["labels"].isnan()] != 0.5).sum())
        return stats.loss, [stats.accuracy.item() * decisive if decisive else 0.0, decisive, stats.num_steps]

    def metrics(self, totals):
        return {"accuracy": totals["correct"] / totals["decisive"] if totals["decisive"] else float("nan")}

    def _step_rewards(self, model, encoded, batch_size) -> tuple[list[torch.Tensor], list]:
        solutions = [s for group in encoded.groups for s in group.solutions]
        rewards = ShardedScorer(model).score_encoded_steps(
            [s.sequence.input_ids for s in solutions], [s.sequence.reward_positions for s in solutions], batch_size)
        return rewards, [s.labels for s in solutions]

    def evaluate(self, model, encoded, batch_size):
        return step_metrics(*self._step_rewards(model, encoded, batch_size)).to_dict()

    def fit_normalization(self, model, encoded, batch_size):
        """Platt scaling on the labelled steps: sigmoid(normalized reward) is then a calibrated probability."""
        model.set_normalization(*fit_platt(*labelled_steps(*self._step_rewards(model, encoded, batch_size))))
        return []

    def learning_warnings(self, eval_metrics):
        if not eval_metrics or not eval_metrics.get("num_steps") or eval_metrics["auroc"] != eval_metrics["auroc"]:
            return []
        if eval_metrics["auroc"] > 0.5:
            return []
        return [f"validation step AUROC {eval_metrics['auroc']:.3f} on {eval_metrics['num_steps']} labelled steps "
                "is not above chance: train longer, raise --lr, or check the data"]


def build_objective(config: TrainConfig) -> Objective:
    name = config.objective
    if name == "auto":
        name = "steps" if config.data and is_step_data(config.data[0]) else "bradley_terry"
    if name not in OBJECTIVES[1:]:
        raise RewardkitError(f"unknown objective {config.objective!r}; expected one of: {', '.join(OBJECTIVES)}")
    return {"bradley_terry": BradleyTerry, "steps": StepClassification}[name](config)


def load_train_and_eval(config: TrainConfig) -> tuple[Any, Any, str]:
    """(train, eval, what loading the training data read and skipped), as the run's objective reads them."""
    return build_objective(config).load()


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion `p` observed on `n` trials (95% by default)."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
