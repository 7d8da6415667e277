"""What an ensemble adds to a training run (members, resampling, default aggregation), as a plain dataclass whose
field metadata is also `rewardkit ensemble train`'s options. Imports no torch, so `--help` stays fast."""

from __future__ import annotations

from dataclasses import dataclass

from rewardkit.fields import option, validate_fields

AGGREGATES = ("mean", "min", "uwo")  # see aggregate.py


@dataclass
class EnsembleConfig:
    members: int = option(4, "number of reward models", at_least=1)
    bootstrap: bool = option(False, "train each member on a resample (with replacement) of the training records")
    aggregate: str = option("mean", "default aggregation saved in the manifest: mean, min (worst case) or uwo "
                            "(mean - lambda * std)", choices=AGGREGATES)
    lam: float = option(0.5, "uwo's penalty on disagreement, saved as the default", flag="--lambda", at_least=0)

    def validate(self) -> None:
        validate_fields(self)
