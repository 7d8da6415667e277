"""Search guided by a process reward model: best-of-n by solution score, and step-level beam search.

A PRM rates every step of a solution; a solution's score aggregates the step probabilities (`min`, `product`,
`last`, `mean`: `rewardkit.model.step_scores`). Two ways to spend more samples at inference:

- **Best-of-n** (Lightman et al. 2023): sample n whole solutions, keep the one with the best score.
- **Step-level beam search**: grow solutions one step at a time. Each of the `beam_width` partial solutions of a
  prompt is continued by `expansions` sampled next steps; the PRM scores every candidate's steps so far, and the
  best `beam_width` candidates (finished ones included) survive. A solution finishes when the policy ends it
  (EOS) instead of writing the step delimiter, or at `max_steps`.

The policy is any causal LM that writes a solution as steps separated by a delimiter string (the world's " ;",
"\\n\\n" for chat models): `policy_context(prompt, steps)` is the text it continues, `prm_prompt(prompt)` what
the PRM sees as the problem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rewardkit.lm import sample_responses
from rewardkit.model.reward_model import RewardModel
from rewardkit.model.step_scores import AGGREGATIONS
from rewardkit.rl.rewards import RewardFn


def solution_scores(
    prm: RewardModel, prompts: Sequence[str], solutions: Sequence[Sequence[str]], aggregation: str = "min",
    batch_size: int = 64,
) -> torch.Tensor:  # fmt: skip
    """Each solution's score: `aggregation` of its step probabilities under the PRM (NaN for no steps)."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; expected one of: {', '.join(AGGREGATIONS)}")
    scored = [i for i, steps in enumerate(solutions) if steps]
    scores = torch.full((len(solutions),), float("nan"), dtype=torch.float64)
    if scored:
        steps = prm.score_steps([prompts[i] for i in scored], [solutions[i] for i in scored], batch_size=batch_size)
        scores[scored] = steps.aggregate(aggregation)
    return scores


def prm_reward_fn(
    prm: RewardModel, split_steps: Callable[[str], list[str]], aggregation: str = "min",
    prm_prompt: Callable[[str], str] = lambda prompt: prompt, batch_size: int = 64,
) -> RewardFn:  # fmt: skip
    """The PRM as a `RewardFn` over (prompts, response texts), for `best_of_n_curve` and PPO: each response is split
    into steps and scored by `aggregation` (a response without steps scores 0)."""

    def reward(prompts: list[str], responses: list[str]) -> torch.Tensor:
        scores = solution_scores(prm, [prm_prompt(p) for p in prompts], [split_steps(r) for r in responses],
                                 aggregation, batch_size)
        return torch.nan_to_num(scores, nan=0.0).float()

    return reward


def prm_best_of_n(
    prm: RewardModel, prompts: Sequence[str], candidates: Sequence[Sequence[Sequence[str]]], aggregation: str = "min"
) -> tuple[list[int], torch.Tensor]:
    """Per prompt, the index of its best candidate solution and all candidates' scores [P, N] (equal N)."""
    flat_prompts = [prompt for prompt, group in zip(prompts, candidates, strict=True) for _ in group]
    scores = solution_scores(prm, flat_prompts, [s for group in candidates for s in group], aggregation)
    table = scores.reshape(len(prompts), -1)
    return torch.nan_to_num(table, nan=-1.0).argmax(dim=1).tolist(), table


@dataclass
class BeamSearchConfig:
    beam_width: int = 4  # partial solutions kept per prompt
    expansions: int = 4  # next steps sampled from each partial solution
    max_steps: int = 8
    max_step_tokens: int = 16
    aggregation: str = "min"  # how candidates (partial or finished) are ranked
    temperature: float = 1.0
    seed: int = 0


@dataclass
class Beam:
    steps: list[str]
    finished: bool = False
    score: float = float("-inf")


def step_beam_search(
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prm: RewardModel,
    prompts: Sequence[str],
    delimiter: str,
    config: BeamSearchConfig | None = None,
    policy_context: Callable[[str, list[str]], str] | None = None,
    prm_prompt: Callable[[str], str] = lambda prompt: prompt,
) -> list[Beam]:
    """The best solution found for each prompt (finished solutions first, then by score)."""
    config = config or BeamSearchConfig()
    if config.aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {config.aggregation!r}; expected one of: {', '.join(AGGREGATIONS)}")
    policy_context = policy_context or (lambda prompt, steps: prompt + "".join(f" {s}{delimiter}" for s in steps))
    generator = torch.Generator(device=policy.device).manual_seed(config.seed)
    beams = [[Beam([])] for _ in prompts]
    for _ in range(config.max_steps):
        growing = [(p, beam) for p, prompt_beams in enumerate(beams) for beam in prompt_beams if not beam.finished]
        if not growing:
            break
        contexts = [policy_context(prompts[p], beam.steps) for p, beam in growing for _ in range(config.expansions)]
        samples = sample_responses(policy, tokenizer, contexts, config.max_step_tokens, config.temperature,
                                   generator=generator)
        candidates: list[list[Beam]] = [[beam for beam in prompt_beams if beam.finished] for prompt_beams in beams]
        new: list[tuple[int, Beam]] = []
        for index, text in enumerate(samples.texts):
            p, beam = growing[index // config.expansions]
            step, ended = _next_step(text, delimiter)
            if step and not any(c.steps == beam.steps + [step] for c in candidates[p]):
                candidate = Beam(beam.steps + [step], finished=ended)
                candidates[p].append(candidate)
                new.append((p, candidate))
        scores = solution_scores(prm, [prm_prompt(prompts[p]) for p, _ in new], [b.steps for _, b in new],
                                 config.aggregation)
        for (_, candidate), score in zip(new, scores.tolist(), strict=True):
            candidate.score = score
        beams = [sorted(c, key=lambda b: b.score, reverse=True)[: config.beam_width] or old
                 for c, old in zip(candidates, beams, strict=True)]  # fmt: skip
    return [max(prompt_beams, key=lambda b: (b.finished, b.score)) for prompt_beams in beams]


def _next_step(text: str, delimiter: str) -> tuple[str, bool]:
    """(the step the policy wrote, whether it ended the solution): text up to the delimiter, or all of it when
    the policy stopped (EOS, or the step's token budget) without one."""
    head, found, _ = text.partition(delimiter.strip() or delimiter)
    return head.strip(), not found
