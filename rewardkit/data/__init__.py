"""Preference data: read files, HF datasets and published benchmarks into `PreferenceGroup`s.

from rewardkit.data import load_preferences, split_dataset
data = load_preferences("pairs.jsonl")  # format auto-detected; data.report says what was read/skipped
train, val = split_dataset(data, eval_fraction=0.1, seed=0)
steps = load_steps("../shared/data/processbench/math.json")  # step-labelled solutions for process RMs
"""

from rewardkit.data.errors import DataError
from rewardkit.data.loading import FORMATS, load_preferences, split_dataset
from rewardkit.data.records import Comparison, LoadReport, PreferenceDataset, PreferenceGroup
from rewardkit.data.step_formats import STEP_FORMATS, load_steps
from rewardkit.data.steps import StepDataset, StepGroup, StepSolution, split_steps

__all__ = [
    "FORMATS",
    "STEP_FORMATS",
    "Comparison",
    "DataError",
    "LoadReport",
    "PreferenceDataset",
    "PreferenceGroup",
    "StepDataset",
    "StepGroup",
    "StepSolution",
    "load_preferences",
    "load_steps",
    "split_dataset",
    "split_steps",
]
