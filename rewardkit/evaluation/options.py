"""The settings of an evaluation run, as a plain dataclass whose field metadata is also `rewardkit eval`'s options
(imports no torch, so `--help` stays fast)."""

from __future__ import annotations

from dataclasses import dataclass

from rewardkit.fields import option


@dataclass
class EvalOptions:
    batch_size: int = option(32, "sequences per forward pass", at_least=1)
    bootstrap_samples: int = option(1000, "bootstrap resamples for the interval", flag="--bootstrap", at_least=1)
    confidence: float = 0.95
    seed: int = option(0, "seed of the bootstrap and of the calibration split")
    sections: dict[str, list[str]] | None = None  # RewardBench sections: {section: [subset, ...]}
    calibration_bins: int = 10
    temperature: float | None = None  # fitted beforehand (e.g. on --calibrate-on data) and applied as is
    temperature_source: str = ""  # what it was fitted on, for the report
    calibrate_fraction: float | None = option(
        None, "fit the temperature on this share of each dataset's prompts, measure on the rest", above=0, below=1)
    progress: bool | str = False  # a progress bar over the sequences scored, named by the text if one is given


@dataclass
class ProcessEvalOptions:
    """The settings of an evaluation on step-labelled data (`evaluation/process.py`); batch size, bootstrap and seed
    are the same options as `EvalOptions`'."""

    batch_size: int = 32
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    seed: int = 0  # of the validation split and the bootstrap
    threshold: float | None = option(
        None, "probability below which a step is predicted wrong (default: chosen on a validation split)",
        above=0, below=1)
    threshold_source: str = ""
    validation_fraction: float = option(
        0.3, "share of each dataset's problems the threshold is chosen on, the rest measured", above=0, below=1)
    progress: bool = False
