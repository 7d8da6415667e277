"""Intervals and verdicts for optimization experiments: a bootstrap over prompts within one run, a t interval over
independent runs (seeds), and verdicts that are stated only when the interval supports them.

    estimates = bootstrap(lambda idx: {"gold_at_end": gold[-1, idx].mean()}, num_units=64, seed=0)
    estimates["gold_at_end"]                      # Estimate(value, low, high)
    over_seeds([run0, run1, run2])               # every Estimate in the runs' results becomes a t interval over seeds
    verdict(drop, "gold fell after its peak", "gold was still rising")   # or "not resolved at this sample size"

Within one run the bootstrap covers evaluation noise only (which prompts and samples were drawn), not the variation
between training runs; over seeds the t interval covers both, with k - 1 degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

NOT_RESOLVED = "not resolved at this sample size"
_T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a 95% interval; `low`/`high` may be ±inf (e.g. a fitted peak that may not exist)."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Estimate:
        return cls(*(math.nan if d[k] is None else float(d[k]) for k in ("value", "low", "high")))

    def above(self, threshold: float = 0.0) -> bool:
        return self.low > threshold

    def below(self, threshold: float = 0.0) -> bool:
        return self.high < threshold

    def format(self, spec: str = "+.2f") -> str:
        """'+0.27 [+0.20, +0.33]'."""
        return f"{_number(self.value, spec)} [{_number(self.low, spec)}, {_number(self.high, spec)}]"


def _number(x: float, spec: str) -> str:
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return format(x, spec)


def is_estimate(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"value", "low", "high"}


def _quantiles(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval without interpolation, so ±inf draws (a fit with no peak) do not become nan."""
    draws = draws[~np.isnan(draws)]
    if len(draws) == 0:
        return math.nan, math.nan
    low, high = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2], method="inverted_cdf")
    return float(low), float(high)


def bootstrap(
    statistics: Callable[[np.ndarray], dict[str, float]],
    num_units: int,
    num_samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Estimate]:
    """`statistics(indices)` on all units (the point estimates) and on `num_samples` resamples of the units (prompts)
    drawn with replacement (the percentile intervals). Every statistic sees the same resamples."""
    point = statistics(np.arange(num_units))
    rng = np.random.default_rng(seed)
    draws = {name: np.empty(num_samples) for name in point}
    for b in range(num_samples):
        for name, value in statistics(rng.integers(0, num_units, size=num_units)).items():
            draws[name][b] = value
    return {name: Estimate(float(point[name]), *_quantiles(draws[name], confidence)) for name in point}


def t_interval(values: list[float] | np.ndarray) -> Estimate:
    """Mean of independent runs with a 95% Student-t interval (k - 1 degrees of freedom; needs k >= 2)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        raise ValueError("a t interval needs at least two runs")
    if not np.isfinite(values).all():  # e.g. no fitted peak (at infinity) in some run: no mean, report the range
        return Estimate(float(np.median(values)), float(values.min()), float(values.max()))
    k = len(values)
    t = _T_975.get(k - 1, 1.96 + 2.5 / (k - 1))  # beyond 10 dof the tail shrinks towards 1.96
    half = t * values.std(ddof=1) / math.sqrt(k)
    return Estimate(float(values.mean()), float(values.mean() - half), float(values.mean() + half))


def over_seeds(runs: list[object]) -> object:
    """Combine the same results tree from independent runs: every estimate ({"value", "low", "high"}) becomes the
    mean over runs with a t interval plus "per_seed" values; numbers that differ become their mean; lists and dicts
    are combined element by element; anything else is taken from the first run. One run is returned as it is."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    if is_estimate(first):
        values = [run["value"] for run in runs]
        return {**t_interval([math.nan if v is None else v for v in values]).to_dict(), "per_seed": values}
    if isinstance(first, dict):
        return {key: over_seeds([run[key] for run in runs]) for key in first if all(key in run for run in runs)}
    if isinstance(first, list) and all(isinstance(run, list) and len(run) == len(first) for run in runs):
        return [over_seeds(list(items)) for items in zip(*runs, strict=True)]
    if isinstance(first, int | float) and not isinstance(first, bool):
        values = [run for run in runs if run is not None]
        if values and any(v != first for v in values):
            return float(np.mean(values))
    return first


def verdict(estimate: Estimate, if_above: str, if_below: str, threshold: float = 0.0) -> str:
    """`if_above` when the whole interval lies above `threshold`, `if_below` when below, else not resolved."""
    if estimate.above(threshold):
        return if_above
    if estimate.below(threshold):
        return if_below
    return NOT_RESOLVED
