"""Held-out evaluation of a policy during optimization: fresh samples for held-out prompts at fixed checkpoints.

A policy's own training rollouts are a poor measurement: they come from training prompts, they are the samples the
update was computed on, and a window average mixes several policies. `HeldOutEvaluation` instead samples
`samples_per_prompt` fresh responses for each held-out prompt at each checkpoint, scores them with every metric
(gold, proxy, length, ...) and measures the KL to the initial policy on the same samples (k1, summed over tokens):

    evaluation = HeldOutEvaluation(sft, tokenizer, held_out_prompts, {"gold": gold, "proxy": rm.score},
                                   describe=world.measure)   # optional: many per-response measures at once
    evaluation.evaluate(sft, step=0)
    train_ppo(policy, sft, tokenizer, train_prompts, rm.score, config,
              callback=evaluation.callback(steps=[10, 20, 50, 100]))
    curve = evaluation.curve(reference)    # OptimizationCurve centred on the initial policy's per-prompt means
    summarize_curve(curve)                 # intervals, Gao fit, peak, drop (rewardkit.rl.curves)

Each checkpoint's samples come from their own seeded stream (seed, checkpoint), so the same seed gives the same
measurements whatever else ran before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rewardkit.lm import sample_responses
from rewardkit.rl.curves import OptimizationCurve, centre
from rewardkit.rl.kl import sequence_kl
from rewardkit.rl.ppo import Callback
from rewardkit.rl.rewards import RewardFn, score_responses


def stream_seed(*keys: int) -> int:
    """A seed for a torch generator from integer keys: distinct keys give independent streams."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


class HeldOutEvaluation:
    """Per checkpoint and prompt: the mean of each metric over fresh samples and the mean KL to `reference`."""

    def __init__(
        self,
        reference: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompts: list[str],
        metrics: dict[str, RewardFn],
        describe: Callable[[list[str], list[str]], dict[str, np.ndarray]] | None = None,
        samples_per_prompt: int = 8,
        max_new_tokens: int = 32,
        seed: int = 0,
        batch_size: int = 512,
    ):
        if not prompts:
            raise ValueError("held-out evaluation needs at least one prompt")
        self.reference, self.tokenizer, self.prompts, self.metrics = reference, tokenizer, list(prompts), metrics
        self.describe = describe
        self.samples_per_prompt, self.max_new_tokens = samples_per_prompt, max_new_tokens
        self.seed, self.batch_size = seed, batch_size
        self.checkpoints: list[int] = []
        self.kl: list[np.ndarray] = []
        self.values: dict[str, list[np.ndarray]] = {}

    @torch.no_grad()
    def evaluate(self, policy: PreTrainedModel, step: int) -> dict[str, float]:
        """Sample, score and measure KL at this checkpoint; returns the prompt means (uncentred)."""
        was_training = policy.training
        policy.eval()
        repeated = [p for p in self.prompts for _ in range(self.samples_per_prompt)]
        generator = torch.Generator(device=policy.device).manual_seed(stream_seed(self.seed, step))
        texts, kl = [], []
        for start in range(0, len(repeated), self.batch_size):
            samples = sample_responses(policy, self.tokenizer, repeated[start : start + self.batch_size],
                                       self.max_new_tokens, generator=generator)
            texts += samples.texts
            kl.append(sequence_kl(policy, self.reference, samples.input_ids, samples.attention_mask,
                                  samples.response_mask).float().cpu())
        policy.train(was_training)
        shape = (len(self.prompts), self.samples_per_prompt)
        self.checkpoints.append(step)
        self.kl.append(torch.cat(kl).numpy().reshape(shape).mean(axis=1))
        scores = {name: score_responses(fn, repeated, texts).numpy() for name, fn in self.metrics.items()}
        scores |= self.describe(repeated, texts) if self.describe else {}
        for name, values in scores.items():
            self.values.setdefault(name, []).append(np.asarray(values, dtype=float).reshape(shape).mean(axis=1))
        return {"kl": float(self.kl[-1].mean())} | {name: float(v[-1].mean()) for name, v in self.values.items()}

    def callback(self, steps: Iterable[int]) -> Callback:
        """A `train_ppo` callback that evaluates after each of `steps` optimizer steps (step 0: call `evaluate`)."""
        wanted = set(steps)

        def evaluate_at(row: dict[str, float], policy: PreTrainedModel) -> None:
            if row["step"] + 1 in wanted:  # row["step"] counts from 0: after it, step + 1 updates are done
                self.evaluate(policy, int(row["step"]) + 1)

        return evaluate_at

    def curve(self, reference: dict[str, np.ndarray]) -> OptimizationCurve:
        """The checkpoints so far as an RL curve, each metric centred on `reference` (per-prompt means, e.g. of the
        initial policy's samples for the same prompts)."""
        if not self.checkpoints:
            raise ValueError("no checkpoint evaluated yet")
        order = np.argsort(self.checkpoints, kind="stable")
        values = {name: np.stack(v)[order] for name, v in self.values.items()}
        return OptimizationCurve("rl", [self.checkpoints[i] for i in order], np.stack(self.kl)[order],
                                 centre(values, reference))
