"""Gold-versus-KL curves of an optimized policy on held-out prompts, with intervals, Gao et al.'s fit and a peak.

An `OptimizationCurve` holds, for each checkpoint (n for best-of-n, a step for RL) and each held-out prompt, the
mean of every metric over that checkpoint's samples and the mean KL to the initial policy. Metrics are centred per
prompt on the initial policy's samples for the same prompts, so the initial policy really scores 0.
`summarize_curve` turns it into JSON-ready statistics, each point estimate with a bootstrap interval over prompts:

    points          every checkpoint: KL, √KL, the target (gold) and the proxy with intervals, other metrics' means
    fit             Gao et al.'s form fitted to the mean curve: α, β, the fitted peak (√KL and gold) with intervals,
                    R² on the fitted points and leave-one-point-out R² (judged on points it was not fitted to)
    peak            the observed peak: which checkpoint, its √KL and gold, with intervals
    end             every metric at the last checkpoint, with intervals
    gain_at_peak    gold at the peak, cross-fitted: the peak is picked on one half of the prompts and measured on
                    the other (then the halves swap), so the noise that makes a point the maximum does not also make
                    its height; on a flat curve it is 0 on average, not positive
    drop_after_peak gold at that peak minus gold at the end, cross-fitted the same way

The intervals cover the evaluation noise of one run (which prompts, which samples); the variation between runs is
covered by repeating the run with other seeds (`rewardkit.rl.statistics.over_seeds`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rewardkit.rl.best_of_n import best_of_n_per_prompt, doubling_ns, kl_best_of_n
from rewardkit.rl.overoptimization import Form, fit_overoptimization
from rewardkit.rl.statistics import bootstrap


@dataclass
class OptimizationCurve:
    form: Form  # "bon" (best-of-n: checkpoints are n) or "rl" (checkpoints are optimizer steps)
    checkpoints: list[int]
    kl: np.ndarray  # [C, P] mean KL(pi || pi_init) per checkpoint and prompt, in nats
    metrics: dict[str, np.ndarray]  # name -> [C, P], centred per prompt on the initial policy

    def __post_init__(self) -> None:
        shape = (len(self.checkpoints), self.kl.shape[1])
        for name, values in {"kl": self.kl, **self.metrics}.items():
            if values.shape != shape:
                raise ValueError(f"{name} has shape {values.shape}, expected (checkpoints, prompts) = {shape}")

    @property
    def checkpoint_name(self) -> str:
        return "n" if self.form == "bon" else "step"

    def up_to(self, checkpoint: int) -> OptimizationCurve:
        """The curve cut after `checkpoint` (e.g. a long run compared with a shorter one at equal steps)."""
        keep = [c for c, x in enumerate(self.checkpoints) if x <= checkpoint]
        return OptimizationCurve(self.form, [self.checkpoints[c] for c in keep], self.kl[keep],
                                 {name: values[keep] for name, values in self.metrics.items()})

    def max_sqrt_kl(self) -> float:
        """The largest mean √KL the curve reached (mean over prompts, at any checkpoint)."""
        return float(self._mean_sqrt_kl().max())

    def _mean_sqrt_kl(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.kl.mean(axis=1), 0.0))  # a sampled KL estimate can dip below 0 near SFT

    def at_sqrt_kl(self, sqrt_kl: float) -> OptimizationCurve:
        """A one-checkpoint curve: every metric (per prompt) where the mean √KL first reaches `sqrt_kl`, linearly
        interpolated between the two checkpoints around it; curves from different optimizers (or proxies) compared
        here are compared at equal KL rather than at equal steps, which move KL at different rates."""
        root = self._mean_sqrt_kl()
        if not 0 <= sqrt_kl <= root.max():
            raise ValueError(f"the curve reaches √KL {root.max():.3f} at most, not {sqrt_kl:.3f}")
        after = int(np.argmax(root >= sqrt_kl))
        before = max(after - 1, 0)
        span = root[after] - root[before]
        weight = 1.0 if span <= 0 else float((sqrt_kl - root[before]) / span)

        def blend(values: np.ndarray) -> np.ndarray:
            return ((1 - weight) * values[before] + weight * values[after])[None, :]

        return OptimizationCurve(self.form, [self.checkpoints[after]], blend(self.kl),
                                 {name: blend(values) for name, values in self.metrics.items()})

    @classmethod
    def from_best_of_n(cls, proxy: np.ndarray, metrics: dict[str, np.ndarray], n_max: int) -> OptimizationCurve:
        """From N >= n_max scored samples per prompt ([P, N] each): the unbiased best-of-n estimates for
        n = 1, 2, 4, ..., n_max, centred on n = 1 (plain sampling from the initial policy) per prompt."""
        ns = doubling_ns(n_max)
        per_prompt = best_of_n_per_prompt(proxy, metrics, ns)
        centred = {name: values - values[:1] for name, values in per_prompt.items()}
        kl = np.repeat(np.array([[kl_best_of_n(n)] for n in ns]), proxy.shape[0], axis=1)
        return cls("bon", ns, kl, centred)


def centre(values: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Subtract each prompt's reference value ([P]) from every checkpoint ([C, P]) of the metrics it has."""
    return {name: v - reference[name][None, :] if name in reference else v for name, v in values.items()}


def summarize_curve(
    curve: OptimizationCurve,
    target: str = "gold",
    with_intervals: tuple[str, ...] = ("gold", "proxy"),
    num_bootstrap: int = 1000,
    seed: int = 0,
    splits: int = 20,
) -> dict:
    """Points, fit, observed peak, end values and the cross-fitted drop after the peak, with bootstrap intervals over
    prompts (see the module docstring)."""
    gold, num_prompts = curve.metrics[target], curve.kl.shape[1]
    split_rng = np.random.default_rng([seed, 1])

    def statistics(idx: np.ndarray) -> dict[str, float]:
        kl = np.maximum(curve.kl[:, idx].mean(axis=1), 0.0)
        d, g = np.sqrt(kl), gold[:, idx].mean(axis=1)
        fit = fit_overoptimization(d, g, curve.form)
        peak = int(np.argmax(g))
        stats = {"alpha": fit.alpha, "beta": fit.beta, "fit_sqrt_kl_peak": fit.d_peak, "fit_gold_peak": fit.r_peak,
                 "peak_sqrt_kl": d[peak], "peak_gold": g[peak]}
        stats |= {f"{name}@{c}": curve.metrics[name][c, idx].mean()
                  for name in with_intervals if name in curve.metrics for c in range(len(d))}
        stats |= {f"end:{name}": values[-1, idx].mean() for name, values in curve.metrics.items()}
        is_point_estimate = len(idx) == num_prompts and (idx == np.arange(num_prompts)).all()
        gain, drop = np.mean([_cross_fitted(gold, idx, split_rng) for _ in range(splits if is_point_estimate else 1)],
                             axis=0)
        return stats | {"gain_at_peak": float(gain), "drop_after_peak": float(drop)}

    est = bootstrap(statistics, num_prompts, num_bootstrap, seed)
    kl = np.maximum(curve.kl.mean(axis=1), 0.0)
    full_fit = fit_overoptimization(np.sqrt(kl), gold.mean(axis=1), curve.form)
    name = curve.checkpoint_name
    points = []
    for c, checkpoint in enumerate(curve.checkpoints):
        point: dict = {name: checkpoint, "kl": float(kl[c]), "sqrt_kl": float(math.sqrt(kl[c]))}
        for metric, values in curve.metrics.items():
            key = f"{metric}@{c}"
            point[metric] = est[key].to_dict() if key in est else float(values[c].mean())
        points.append(point)
    peak = int(np.argmax(gold.mean(axis=1)))
    return {
        "checkpoint": name,
        "prompts": num_prompts,
        "points": points,
        "fit": {"form": curve.form, "alpha": est["alpha"].to_dict(), "beta": est["beta"].to_dict(),
                "r2": full_fit.r2, "r2_cv": full_fit.r2_cv, "sqrt_kl_peak": est["fit_sqrt_kl_peak"].to_dict(),
                "gold_at_peak": est["fit_gold_peak"].to_dict()},
        "peak": {name: curve.checkpoints[peak], "sqrt_kl": est["peak_sqrt_kl"].to_dict(),
                 "gold": est["peak_gold"].to_dict()},
        "end": {name: curve.checkpoints[-1], "sqrt_kl": float(math.sqrt(kl[-1])),
                **{metric: est[f"end:{metric}"].to_dict() for metric in curve.metrics}},
        "gain_at_peak": est["gain_at_peak"].to_dict(),
        "drop_after_peak": est["drop_after_peak"].to_dict(),
    }


def _cross_fitted(gold: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """(gold at the peak, gold at the peak minus gold at the end), the peak picked on one half of the prompts and
    both measured on the other half; averaged over the two ways round."""
    shuffled = idx[rng.permutation(len(idx))]
    halves = shuffled[: len(idx) // 2], shuffled[len(idx) // 2 :]
    gains, drops = [], []
    for pick, measure in (halves, halves[::-1]):
        peak = int(np.argmax(gold[:, pick].mean(axis=1)))
        gains.append(gold[peak, measure].mean())
        drops.append(gold[peak, measure].mean() - gold[-1, measure].mean())
    return float(np.mean(gains)), float(np.mean(drops))


def paired_difference(a: OptimizationCurve, b: OptimizationCurve, metric: str = "gold", num_bootstrap: int = 1000,
                      seed: int = 0) -> dict:
    """b minus a at their last checkpoints, with a bootstrap interval over the prompts both were evaluated on
    (paired: the same prompts, and for best-of-n re-rankings the same samples)."""
    difference = b.metrics[metric][-1] - a.metrics[metric][-1]
    if difference.shape != a.kl.shape[1:]:
        raise ValueError("the two curves were evaluated on different numbers of prompts")
    est = bootstrap(lambda idx: {"difference": difference[idx].mean()}, len(difference), num_bootstrap, seed)
    return est["difference"].to_dict()
