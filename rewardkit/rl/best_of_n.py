"""Best-of-n sampling against a reward function, and Gao et al.'s unbiased best-of-n curves.

Best-of-n draws n responses from the initial policy and keeps the one with the highest proxy score. Its KL
from the initial policy is known in closed form (an upper bound on the true KL, Gao et al. 2022):
    KL_bon(n) = log n - (n - 1) / n
Sampling N >= n responses once and sorting them by proxy score ascending, the expected value of any
metric (proxy, gold, length, ...) of the best-of-n response is estimated without bias by averaging over all
n-subsets:
    E[metric(BoN_n)] = sum_{i=n..N} C(i-1, n-1) / C(N, n) * metric_(i)
(the i-th smallest is the best of a subset iff the other n-1 members come from the i-1 below it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rewardkit.lm import sample_responses
from rewardkit.progress import progress_bar
from rewardkit.rl.rewards import RewardFn, score_responses


@dataclass
class BestOfNConfig:
    n_max: int = 256
    num_samples: int | None = None  # N responses per prompt, >= n_max (None: n_max); larger N, lower variance
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_k: int | None = None
    sample_batch_size: int = 64  # sequences decoded together
    score_batch_size: int = 64  # (prompt, response) pairs per reward-function call
    seed: int = 0
    progress: bool = True


@dataclass
class BestOfNResult:
    curve: list[dict[str, float]]  # one row per n: n, kl_bon, sqrt_kl_bon, proxy, <metric name>...
    responses: list[list[str]]  # [P][N]
    proxy_scores: np.ndarray  # [P, N]
    metric_scores: dict[str, np.ndarray]  # name -> [P, N]


def kl_best_of_n(n: int) -> float:
    """KL_bon(n) = log n - (n - 1) / n, in nats."""
    return math.log(n) - (n - 1) / n


def log_comb(n: int, k: int) -> float:
    """log C(n, k) through log-gamma: C(4096, 256) overflows a float, its log does not."""
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def best_of_n_weights(num_samples: int, n: int) -> np.ndarray:
    """w_i = C(i-1, n-1) / C(N, n) for i = 1..N in ascending proxy order (0 for i < n); sums to 1."""
    if not 1 <= n <= num_samples:
        raise ValueError(f"need 1 <= n <= N, got n={n}, N={num_samples}")
    weights = np.zeros(num_samples)
    log_weights = [log_comb(i - 1, n - 1) - log_comb(num_samples, n) for i in range(n, num_samples + 1)]
    weights[n - 1 :] = np.exp(log_weights)
    # hockey-stick identity: sum_i C(i-1, n-1) = C(N, n); renormalising removes the log-gamma rounding
    return weights / weights.sum()


def expected_best_of_n(proxy: np.ndarray, metric: np.ndarray, n: int) -> float:
    """Unbiased E[metric of the best-of-n response] from N >= n samples of one prompt (1-D arrays)."""
    order = np.argsort(proxy, kind="stable")  # ties go to the later sample; sample order is random anyway
    return float(best_of_n_weights(len(proxy), n) @ np.asarray(metric, dtype=float)[order])


def doubling_ns(n_max: int) -> list[int]:
    """1, 2, 4, ..., n_max (n_max appended when it is not a power of two)."""
    ns = [2**k for k in range(int(math.log2(n_max)) + 1)]
    return ns if ns[-1] == n_max else [*ns, n_max]


def best_of_n_per_prompt(
    proxy: np.ndarray, metrics: dict[str, np.ndarray] | None = None, ns: list[int] | None = None
) -> dict[str, np.ndarray]:
    """Unbiased E[score of BoN_n] for each prompt from scores [P, N]: {"proxy": [len(ns), P], <metric>: ...}."""
    ns = ns or doubling_ns(proxy.shape[1])
    order = np.argsort(proxy, axis=1, kind="stable")
    sorted_values = {"proxy": np.take_along_axis(proxy, order, axis=1)}
    for name, values in (metrics or {}).items():
        sorted_values[name] = np.take_along_axis(np.asarray(values, dtype=float), order, axis=1)
    weights = np.stack([best_of_n_weights(proxy.shape[1], n) for n in ns], axis=1)  # [N, len(ns)]
    return {name: (values @ weights).T for name, values in sorted_values.items()}


def best_of_n_estimates(
    proxy: np.ndarray, metrics: dict[str, np.ndarray] | None = None, ns: list[int] | None = None
) -> list[dict[str, float]]:
    """Best-of-n curve from scores [P, N]: per n, the prompt mean of the unbiased estimate of each score."""
    ns = ns or doubling_ns(proxy.shape[1])
    per_prompt = best_of_n_per_prompt(proxy, metrics, ns)
    rows = []
    for i, n in enumerate(ns):
        kl = kl_best_of_n(n)
        row = {"n": n, "kl_bon": kl, "sqrt_kl_bon": math.sqrt(kl)}
        row |= {name: float(values[i].mean()) for name, values in per_prompt.items()}
        rows.append(row)
    return rows


def sample_and_score(
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    score_fns: dict[str, RewardFn],
    n: int,
    config: BestOfNConfig,
) -> tuple[list[list[str]], dict[str, np.ndarray]]:
    """n sampled responses per prompt ([P][n], one seeded stream) and each score function's scores [P, n]."""
    repeated = [prompt for prompt in prompts for _ in range(n)]
    generator = torch.Generator(device=policy.device).manual_seed(config.seed)
    texts: list[str] = []
    chunks = range(0, len(repeated), config.sample_batch_size)
    bar = progress_bar(len(chunks), f"best-of-n: sampling {n} responses for each of {len(prompts)} prompts",
                       config.progress, unit="batches")
    for start in chunks:
        batch = repeated[start : start + config.sample_batch_size]
        samples = sample_responses(
            policy,
            tokenizer,
            batch,
            config.max_new_tokens,
            config.temperature,
            config.top_k,
            generator=generator,
        )
        texts += samples.texts
        bar.update()
    bar.close()
    responses = [texts[p * n : (p + 1) * n] for p in range(len(prompts))]
    scores = {
        name: score_responses(fn, repeated, texts, config.score_batch_size).numpy().reshape(len(prompts), n)
        for name, fn in score_fns.items()
    }
    return responses, scores


def best_of_n_curve(
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    reward_fn: RewardFn,
    config: BestOfNConfig | None = None,
    metrics: dict[str, RewardFn] | None = None,
) -> BestOfNResult:
    """Sample N responses per prompt once; expected proxy and metrics of BoN_n for n = 1, 2, 4, ..., n_max.

    The n = 1 row is the initial policy's mean: subtract it to centre rewards as Gao et al. do.
    """
    config = config or BestOfNConfig()
    metrics = metrics or {}
    num_samples = config.num_samples or config.n_max
    if num_samples < config.n_max:
        raise ValueError(f"num_samples ({num_samples}) must be >= n_max ({config.n_max})")
    if reserved := {"n", "kl_bon", "sqrt_kl_bon", "proxy"} & metrics.keys():
        raise ValueError(f"metric names {sorted(reserved)} are reserved")

    responses, scores = sample_and_score(
        policy, tokenizer, prompts, {"proxy": reward_fn, **metrics}, num_samples, config
    )
    proxy = scores.pop("proxy")
    curve = best_of_n_estimates(proxy, scores, doubling_ns(config.n_max))
    return BestOfNResult(curve=curve, responses=responses, proxy_scores=proxy, metric_scores=scores)


def best_of_n_select(
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    reward_fn: RewardFn,
    n: int,
    config: BestOfNConfig | None = None,
) -> list[str]:
    """The highest-scoring of n sampled responses, for each prompt (sampling settings from `config`)."""
    responses, scores = sample_and_score(policy, tokenizer, prompts, {"proxy": reward_fn}, n, config or BestOfNConfig())
    best = scores["proxy"].argmax(axis=1)
    return [texts[i] for texts, i in zip(responses, best, strict=True)]
