"""A world whose responses are sequences of steps with known gold values: running sums, for process supervision.

A prompt lists 3-5 digits to add; the right solution adds them one at a time, then states the answer:

    "add 3 5 2 4"  ->  "3 + 5 = 8 ; 8 + 2 = 10 ; 10 + 4 = 14 ; answer 14"

A step is correct when it is the right solution's step at that place, so the gold per-step value is known: 1 up
to the first wrong step, 0 from it on (a chain that went wrong stays wrong, as in ProcessBench's labels). The gold
solution reward is whether the final answer is right; two slips can cancel, so a wrong path can end in the right
answer. Demonstrations slip (an addition off by one of `slip_sizes`, 1 or 2 by default; 10, a carry slip, in
`rewardkit experiment prm`) with probability `demo_slip_prob` per addition and carry the wrong total on, so the SFT
policy trained on them makes the mistakes a process reward model should catch.

Labels, as a labelling team would produce them (`StepLabeller`):

- **process** (PRM800K-style, human): read the steps in order until one is judged wrong. A wrong step is missed
  with probability `miss`, a correct one flagged with probability `false_alarm`. Cost: the steps read.
- **outcome** (human): is the final answer right, flipped with probability `outcome_noise`. Cost: `outcome_cost`
  per solution (checking an answer ~ reading one step).
- **Monte-Carlo** (Math-Shepherd, no human): a step's label is the share of `rollouts` policy continuations from
  it that reach the right answer. Cost: policy samples, reported separately.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from rewardkit.world.tokenizer import format_prompt, word_tokenizer
from rewardkit.world.world import World

DELIMITER = ";"
MAX_NUMBER = 99
_STREAM_SPLIT, _STREAM_DEMOS = 1, 3  # World.prompts draws from stream 2


@dataclass
class StepWorldConfig:
    seed: int = 0
    test_fraction: float = 0.2
    num_terms: tuple[int, int] = (3, 5)  # digits per problem, inclusive: 2-4 additions and the answer
    demo_slip_prob: float = 0.12
    slip_sizes: tuple[int, ...] = (1, 2)  # a slip adds or subtracts one of these

    def to_dict(self) -> dict:
        return asdict(self)


def step_tokenizer() -> PreTrainedTokenizerFast:
    return word_tokenizer(["add", "+", "=", DELIMITER, "answer", *map(str, range(MAX_NUMBER + 1))])


def split_solution(response: str) -> list[str]:
    """A response's steps (the text between delimiters, stripped; empty pieces dropped)."""
    return [step.strip() for step in response.split(DELIMITER) if step.strip()]


def join_steps(steps: list[str]) -> str:
    return f" {DELIMITER} ".join(steps)


class StepWorld:
    def __init__(self, config: StepWorldConfig | None = None):
        self.config = config or StepWorldConfig()
        self.gold_offset = 0.0  # saved beside a policy like the main world's (unused: gold is 0 or 1)
        low, high = self.config.num_terms
        rng = self._rng(_STREAM_SPLIT)
        problems = {" ".join(map(str, rng.integers(1, 10, size=int(rng.integers(low, high + 1)))))
                    for _ in range(20_000)}  # fmt: skip
        problems = sorted(problems)
        order = rng.permutation(len(problems))
        num_test = int(round(self.config.test_fraction * len(problems)))
        self._splits = {"test": [f"add {problems[i]}" for i in order[:num_test]],
                        "train": [f"add {problems[i]}" for i in order[num_test:]]}

    # The same seeded streams and prompt sampling as the main world (`prompts(n, split, seed)`).
    _rng = World._rng
    prompts = World.prompts
    num_prompts = World.num_prompts

    @staticmethod
    def terms(prompt: str) -> list[int]:
        return [int(word) for word in prompt.split()[1:]]

    def solution(self, prompt: str, slip_prob: float = 0.0, rng: np.random.Generator | None = None) -> list[str]:
        """The right steps, or with slips: an addition off by 1-2 with probability `slip_prob`, carried on."""
        terms = self.terms(prompt)
        total, steps = terms[0], []
        for term in terms[1:]:
            result = total + term
            if slip_prob and rng is not None and rng.random() < slip_prob:
                result = max(0, result + int(rng.choice(self.config.slip_sizes)) * int(rng.choice([-1, 1])))
            steps.append(f"{total} + {term} = {result}")
            total = result
        return [*steps, f"answer {total}"]

    def demonstrations(self, prompts: list[str], seed: int = 0) -> list[str]:
        rng = self._rng(_STREAM_DEMOS, seed)
        return [join_steps(self.solution(p, self.config.demo_slip_prob, rng)) for p in prompts]

    # ---- gold
    def first_error(self, prompt: str, steps: list[str]) -> int:
        """Index of the first step that is not the right solution's step there (-1: the right solution)."""
        right = self.solution(prompt)
        for index, step in enumerate(steps):
            if index >= len(right) or step != right[index]:
                return index
        return -1 if len(steps) == len(right) else len(steps) - 1  # stopped early: the last step is wrong

    def step_values(self, prompt: str, steps: list[str]) -> list[float]:
        """Gold per-step values: 1 while the solution is on track, 0 from its first wrong step on."""
        error = self.first_error(prompt, steps)
        return [1.0 if error < 0 or k < error else 0.0 for k in range(len(steps))]

    def final_correct(self, prompt: str, response: str | list[str]) -> bool:
        steps = split_solution(response) if isinstance(response, str) else response
        return bool(steps) and steps[-1] == f"answer {sum(self.terms(prompt))}"

    def gold_reward(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        """1 for a right final answer, else 0 (a `RewardFn`)."""
        return torch.tensor([float(self.final_correct(p, r)) for p, r in zip(prompts, responses, strict=True)])


@dataclass
class StepLabeller:
    """A labelling team's error rates and costs (see the module docstring)."""

    miss: float = 0.1
    false_alarm: float = 0.03
    outcome_noise: float = 0.05
    outcome_cost: float = 1.0

    def process_label(self, world: StepWorld, prompt: str, steps: list[str],
                      rng: np.random.Generator) -> tuple[int, int]:  # fmt: skip
        """(the step judged to be the first wrong one, -1 for none; steps read)."""
        values = world.step_values(prompt, steps)
        for index, value in enumerate(values):
            flagged = rng.random() < (1 - self.miss if value == 0.0 else self.false_alarm)
            if flagged:
                return index, index + 1
        return -1, len(steps)

    def outcome_label(self, world: StepWorld, prompt: str, steps: list[str], rng: np.random.Generator) -> float:
        correct = world.final_correct(prompt, steps)
        return float(correct != (rng.random() < self.outcome_noise))


@torch.no_grad()
def monte_carlo_labels(
    world: StepWorld, policy: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, prompts: list[str],
    solutions: list[list[str]], rollouts: int, seed: int = 0, max_new_tokens: int = 40, batch_size: int = 1024,
) -> list[list[float]]:  # fmt: skip
    """Math-Shepherd's soft labels: per step, the share of `rollouts` continuations from it with the right answer
    (the last step's label is its own answer's correctness)."""
    from rewardkit.lm import sample_responses

    contexts, owners = [], []
    for s, (prompt, steps) in enumerate(zip(prompts, solutions, strict=True)):
        for k in range(len(steps) - 1):
            contexts += [f"{format_prompt(prompt)} {join_steps(steps[: k + 1])} {DELIMITER}"] * rollouts
            owners += [(s, k)] * rollouts
    generator = torch.Generator(device=policy.device).manual_seed(seed)
    labels = [[0.0] * len(steps) for steps in solutions]
    for start in range(0, len(contexts), batch_size):
        texts = sample_responses(policy, tokenizer, contexts[start : start + batch_size], max_new_tokens,
                                 generator=generator).texts
        for (s, k), text in zip(owners[start : start + batch_size], texts, strict=True):
            labels[s][k] += world.final_correct(prompts[s], solutions[s][: k + 1] + split_solution(text)) / rollouts
    for s, (prompt, steps) in enumerate(zip(prompts, solutions, strict=True)):
        labels[s][-1] = float(world.final_correct(prompt, steps))
    return labels
