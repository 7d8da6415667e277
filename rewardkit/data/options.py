"""How every command reads preference data: one definition of `--format`, `--skip-bad-records`, `--columns` and
`--max-length`, shared by `train` (TrainConfig extends it), `score`, `eval`, `audit`, `ensemble` and `dpo`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rewardkit.data.loading import FORMATS
from rewardkit.data.step_formats import STEP_FORMATS
from rewardkit.errors import RewardkitError
from rewardkit.fields import option

COLUMNS_EXAMPLE = "prompt=question,chosen=good,rejected=bad"


def parse_columns(text: str) -> dict[str, str]:
    """'prompt=question,chosen=good' -> {'prompt': 'question', 'chosen': 'good'} (format field -> file column)."""
    columns: dict[str, str] = {}
    for item in text.split(","):
        field, _, column = (part.strip() for part in item.partition("="))
        if not field or not column:
            raise RewardkitError(f"--columns expects FIELD=COLUMN pairs separated by commas, e.g. {COLUMNS_EXAMPLE} "
                                 f"(got {text!r})")
        if field in columns:
            raise RewardkitError(f"--columns maps '{field}' twice (got {text!r})")
        columns[field] = column
    return columns


@dataclass
class DataOptions:
    format: str = option("auto", "data format; auto decides from the first record's keys", choices=("auto", *FORMATS))
    skip_bad_records: bool = option(
        False, "skip invalid records (counted by reason in the load report) instead of stopping at the first one")
    columns: dict[str, str] | None = option(
        None, f"read your file's columns as a format's fields, e.g. {COLUMNS_EXAMPLE} (field=column)",
        parse=parse_columns, metavar="FIELD=COLUMN,...")
    max_length: int | None = option(
        None, "max tokens per prompt + response (default: a reward model's own setting; for a new model its "
        "limit, at most 512)", at_least=8)

    def __post_init__(self) -> None:
        if isinstance(self.columns, str):  # a YAML config may write the command-line form
            self.columns = parse_columns(self.columns)

    @property
    def on_error(self) -> Literal["raise", "skip"]:
        return "skip" if self.skip_bad_records else "raise"


@dataclass
class StepDataOptions(DataOptions):
    """The data options of the commands that also read step-labelled solutions (`train`, `eval`): --format also
    takes the step formats."""

    format: str = option("auto", "data format (preferences, or step-labelled solutions for a process RM); auto "
                         "decides from the first record's keys", choices=("auto", *FORMATS, *STEP_FORMATS))
