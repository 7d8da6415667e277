"""`rewardkit experiment length`: a length-controlled reward model (ODIN, Chen et al. 2024) against the plain RM and
the length-only rule, in the demo world whose labellers prefer longer answers.

ODIN puts two linear heads on the RM's last-token hidden state, a quality head r_Q and a length head r_L, trains
their sum with the Bradley-Terry loss, and pushes length into r_L and out of r_Q:

    L = -log sigmoid((r_Q + r_L)(chosen) - (r_Q + r_L)(rejected))      Bradley-Terry on the sum
        - lambda_L * rho(r_L, length)                                   the length head tracks length
        + lambda_Q * |rho(r_Q, length)|                                 the quality head does not
        + lambda_O * |w_Q . w_L| / (|w_Q| |w_L|)                        the heads are orthogonal
    (rho: Pearson correlation over the batch's responses; length in words)

Only r_Q is used downstream: it is saved as an ordinary reward-model checkpoint (`RewardModel.from_pretrained`).
The plain RM is the same loop with every lambda 0, scored by r_Q + r_L (one linear head in effect), so the two
differ only in the disentangling terms.

Per seed (an independent demo world): both RMs from the SFT policy on the same rankings (as pairs), their accuracy
against held-out labels and gold next to the length-only rule's, and one shared best-of-n sample set re-ranked by
the plain RM, by ODIN's r_Q and by length; ODIN minus each at the largest n, t intervals over seeds, verdicts only
where the interval excludes 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rewardkit.demo.config import DemoConfig
from rewardkit.demo.pipeline import to_json
from rewardkit.experiments.common import difference_verdict, run_experiment
from rewardkit.experiments.worlds import best_of_n_curve, quick_setup, seed_world, shared_samples
from rewardkit.model import RewardModel
from rewardkit.model.pooling import reward_coordinates
from rewardkit.progress import Console
from rewardkit.rl.curves import paired_difference, summarize_curve
from rewardkit.rl.statistics import over_seeds
from rewardkit.world.ceilings import LENGTH_RULE, ceilings_and_baselines, held_out_pairs
from rewardkit.world.features import response_length

PLAIN, ODIN, LENGTH = "plain RM", "ODIN quality head", "length-only rule"


@dataclass
class LengthControlConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    workers: int = 2  # seeds side by side in worker processes, one torch thread each (results do not depend on it)
    setup: DemoConfig = field(default_factory=DemoConfig)  # world, SFT, preferences, RM epochs and lr, best-of-n
    lambda_length: float = 1.0
    lambda_quality: float = 1.0
    lambda_orthogonal: float = 1.0
    pairs_per_step: int = 64

    @classmethod
    def quick(cls) -> LengthControlConfig:
        return cls(setup=quick_setup())

    def to_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "workers"}  # timings.json has it


def pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = x - x.mean(), y - y.mean()
    return (x * y).sum() / (x.norm() * y.norm()).clamp(min=1e-8)


def odin_loss(quality: torch.Tensor, length_reward: torch.Tensor, lengths: torch.Tensor, w_quality: torch.Tensor,
              w_length: torch.Tensor, config: LengthControlConfig) -> torch.Tensor:
    """ODIN's loss (module docstring) on [2, B] rewards: row 0 the chosen responses, row 1 the rejected ones."""
    total = quality + length_reward
    bradley_terry = -nn.functional.logsigmoid(total[0] - total[1]).mean()
    length_term = -pearson(length_reward.flatten(), lengths.flatten())
    quality_term = pearson(quality.flatten(), lengths.flatten()).abs()
    orthogonal = (w_quality @ w_length).abs() / (w_quality.norm() * w_length.norm()).clamp(min=1e-8)
    return (bradley_terry + config.lambda_length * length_term + config.lambda_quality * quality_term
            + config.lambda_orthogonal * orthogonal)


class TwoHeadRM(nn.Module):
    """A reward model (its own `score` head is r_Q) with a second linear head r_L on the same hidden state."""

    def __init__(self, reward_model: RewardModel):
        super().__init__()
        self.reward_model = reward_model
        self.length_head = nn.Linear(reward_model.hf_model.config.hidden_size, 1, bias=False)
        nn.init.zeros_(self.length_head.weight)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hf_model = self.reward_model.hf_model
        backbone = getattr(hf_model, hf_model.base_model_prefix)
        hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        rows, columns = reward_coordinates(attention_mask)
        pooled = hidden[rows, columns]
        return hf_model.score(pooled).squeeze(-1), self.length_head(pooled).squeeze(-1)


def _batch(reward_model: RewardModel, prompts: list[str], responses: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and attention mask of (prompt, response) pairs."""
    encoded = [reward_model.encode(p, r).input_ids for p, r in zip(prompts, responses, strict=True)]
    width = max(len(ids) for ids in encoded)
    pad = reward_model.tokenizer.pad_token_id
    ids = torch.tensor([list(e) + [pad] * (width - len(e)) for e in encoded])
    mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in encoded])
    return ids, mask


def train_two_heads(sft_dir: Path, records: list[dict], config: LengthControlConfig, seed: int, disentangle: bool,
                    console: Console, description: str) -> TwoHeadRM:
    """The two-head RM on every pair of `records` (rankings): ODIN's loss, or with `disentangle` False plain
    Bradley-Terry on r_Q + r_L. The demo's RM epochs and learning rate."""
    setup = config.setup
    torch.manual_seed(seed)
    model = TwoHeadRM(RewardModel.from_sft(sft_dir))
    pairs = [(r["prompt"], r["responses"][r["ranking"][a]], r["responses"][r["ranking"][b]])
             for r in records for a in range(len(r["ranking"])) for b in range(a + 1, len(r["ranking"]))]
    steps = max(20, int(setup.rm_epochs * math.ceil(len(pairs) / config.pairs_per_step)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=setup.rm_learning_rate)
    loss_config = config if disentangle else replace(config, lambda_length=0.0, lambda_quality=0.0,
                                                     lambda_orthogonal=0.0)
    rng = np.random.default_rng(seed)
    model.train()
    with console.bar(steps, f"{description}, {len(pairs):,} pairs, seed {setup.seed}") as bar:
        for _ in range(steps):
            chosen = [pairs[i] for i in rng.integers(0, len(pairs), size=config.pairs_per_step)]
            prompts = [p for p, _, _ in chosen] * 2
            texts = [c for _, c, _ in chosen] + [r for _, _, r in chosen]
            quality, length_reward = model(*_batch(model.reward_model, prompts, texts))
            lengths = torch.tensor(response_length(texts), dtype=torch.float32)
            loss = odin_loss(quality.view(2, -1), length_reward.view(2, -1), lengths.view(2, -1),
                             model.reward_model.hf_model.score.weight[0], model.length_head.weight[0], loss_config)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.update(loss=f"{loss.item():.3f}")
    return model.eval()


@torch.no_grad()
def score_heads(model: TwoHeadRM, prompts: list[str], responses: list[str],
                batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(r_Q, r_L) for every (prompt, response)."""
    quality, length_reward = [], []
    for start in range(0, len(prompts), batch_size):
        q, r = model(*_batch(model.reward_model, prompts[start:start + batch_size],
                             responses[start:start + batch_size]))
        quality.append(q.double().numpy())
        length_reward.append(r.double().numpy())
    return np.concatenate(quality), np.concatenate(length_reward)


def run_length_control(config: LengthControlConfig, output_dir: str | Path, console: Console | None = None) -> dict:
    """Every seed; writes results.json and timings.json; returns the results."""
    return run_experiment(config, output_dir, console, run_seed, combine)


def run_seed(config: LengthControlConfig, seed: int, seed_dir: Path, console: Console) -> dict:
    setup, built, records = seed_world(config.setup, seed, seed_dir, console)
    with console.stage("Reward models", "plain and ODIN, the same loop and data"):
        models = {name: train_two_heads(seed_dir / "sft-policy", records, config, setup.stage_seed("rm"),
                                        name == ODIN, console, name) for name in (PLAIN, ODIN)}
        models[ODIN].reward_model.save_pretrained(seed_dir / "odin-quality-rm")  # r_Q alone: a plain RM checkpoint

    def scorer(name: str, prompts: list[str], texts: list[str]) -> np.ndarray:
        quality, length_reward = score_heads(models[name], prompts, texts)
        return quality if name == ODIN else quality + length_reward

    val = built.val_records
    scores = {name: [scorer(name, [r["prompt"]] * len(r["responses"]), r["responses"]) for r in val]
              for name in (PLAIN, ODIN)}
    ceilings = ceilings_and_baselines(held_out_pairs(built.world, built.labeller, val, scores),
                                      seed=setup.stage_seed("bootstrap"))
    flat = [(r["prompt"], x) for r in val for x in r["responses"]]
    odin_quality, odin_length = score_heads(models[ODIN], [p for p, _ in flat], [x for _, x in flat])
    lengths = np.array(response_length([x for _, x in flat]), dtype=float)
    correlations = {"plain RM": float(np.corrcoef(np.concatenate(scores[PLAIN]), lengths)[0, 1]),
                    "ODIN quality head": float(np.corrcoef(odin_quality, lengths)[0, 1]),
                    "ODIN length head": float(np.corrcoef(odin_length, lengths)[0, 1])}

    samples = shared_samples(built, setup, console)
    rankers = {name: scorer(name, samples.prompts, samples.texts) for name in (PLAIN, ODIN)}
    # ties between equal lengths broken at random, once per seed, the same for every n
    jitter = np.random.default_rng(setup.stage_seed("length-ties")).random(len(samples.texts)) * 1e-3
    rankers[LENGTH] = np.array(response_length(samples.texts), dtype=float) + jitter
    curves = {name: best_of_n_curve(samples, values, setup) for name, values in rankers.items()}
    statistics = {"num_bootstrap": setup.bootstrap_samples, "seed": setup.stage_seed("bootstrap")}
    results = {
        "seed": seed,
        "accuracy": {name: {"vs_labels": ceilings["judges"][name]["vs_labels"],
                            "vs_gold": ceilings["judges"][name]["vs_gold"]} for name in (PLAIN, ODIN, LENGTH_RULE)},
        "length_correlation": correlations,
        "best_of_n": {name: summarize_curve(curve, **statistics) for name, curve in curves.items()},
        "odin_minus_at_n_max": {name: paired_difference(curves[name], curves[ODIN], **statistics)
                                for name in (PLAIN, LENGTH)},
    }
    (seed_dir / "results.json").write_text(to_json(results))
    return json.loads(to_json(results))


def combine(runs: list[dict], config: LengthControlConfig) -> dict:
    combined = over_seeds([{k: v for k, v in run.items() if k != "seed"} for run in runs])
    verdicts = {name: difference_verdict([run["odin_minus_at_n_max"][name]["value"] for run in runs],
                                         f"ODIN's quality head beats the {name} at the largest n",
                                         f"ODIN's quality head loses to the {name} at the largest n")
                for name in (PLAIN, LENGTH)}
    return {"seeds": [run["seed"] for run in runs], "config": config.to_dict(), **combined, "verdicts": verdicts}
