"""Preference data: read files, HF datasets and published benchmarks into `PreferenceGroup`s.

from rewardkit.data import load_preferences, split_dataset
data = load_preferences("pairs.jsonl")  # format auto-detected; data.report says what was read/skipped
train, val = split_dataset(data, eval_fraction=0.1, seed=0)
"""

from rewardkit.data.errors import DataError
from rewardkit.data.loading import FORMATS, load_preferences, split_dataset
from rewardkit.data.records import Comparison, LoadReport, PreferenceDataset, PreferenceGroup

__all__ = [
    "FORMATS",
    "Comparison",
    "DataError",
    "LoadReport",
    "PreferenceDataset",
    "PreferenceGroup",
    "load_preferences",
    "split_dataset",
]
