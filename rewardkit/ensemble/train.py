"""Train N reward models that differ in seed (head initialization, batch order) and optionally in data.

    result = train_ensemble(TrainConfig(model=SFT, data=["prefs.jsonl"], output_dir="ens"), EnsembleConfig(4))
    result.ensemble.score(prompts, responses, aggregate="uwo", return_details=True).std  # disagreement

Member i is an ordinary `train` run with seed `config.seed + i` into `output_dir/member-<i>`; all members share
one validation split (see `bootstrap.py`). Eisenstein et al. 2023: members that differ only in fine-tuning
seed share more errors than members pre-trained from different seeds; bootstrapping the data adds diversity
that is cheap to get when every member starts from the same SFT model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from rewardkit.ensemble.bootstrap import plan_member_data
from rewardkit.ensemble.config import EnsembleConfig
from rewardkit.ensemble.ensemble import MANIFEST, RewardEnsemble
from rewardkit.model.reward_model import RewardModel
from rewardkit.training.config import TrainConfig
from rewardkit.training.trainer import train

logger = logging.getLogger("rewardkit")


@dataclass
class EnsembleTrainResult:
    ensemble: RewardEnsemble
    output_dir: Path
    member_summaries: list[dict]  # each member's train_summary.json


def train_ensemble(config: TrainConfig, ensemble: EnsembleConfig | None = None) -> EnsembleTrainResult:
    """Train `ensemble.members` reward models with `config`'s options and save them as one ensemble directory."""
    ensemble = ensemble or EnsembleConfig()
    config.validate()
    ensemble.validate()
    output_dir = Path(config.output_dir)
    plan = plan_member_data(config, output_dir / "data", ensemble.members, ensemble.bootstrap)
    members, summaries, entries = [], [], []
    for index in range(ensemble.members):
        member_dir = output_dir / f"member-{index}"
        member_config = dataclasses.replace(
            config,
            output_dir=str(member_dir),
            seed=config.seed + index,
            data=plan.train[index],
            eval_data=plan.eval,
            eval_fraction=0.0 if not plan.eval else config.eval_fraction,
        )
        if config.resume and (member_dir / "train_summary.json").is_file():  # finished before an interruption
            logger.info("member %d: already trained, loading %s", index, member_dir)
            model = RewardModel.from_pretrained(member_dir)
            summary = json.loads((member_dir / "train_summary.json").read_text())
        else:
            logger.info("training ensemble member %d of %d (seed %d)", index + 1, ensemble.members, member_config.seed)
            result = train(member_config)
            model, summary = result.model, result.summary
        members.append(model.eval())
        summaries.append(summary)
        entries.append({
            "path": member_dir.name,
            "seed": member_config.seed,
            "data": member_config.data,
            "bootstrap": ensemble.bootstrap,
            "distinct_train_records": plan.distinct[index],
            "eval_accuracy": (summary.get("eval") or {}).get("accuracy"),
        })
    manifest = {
        "format": "rewardkit-ensemble",
        "version": 1,
        "base_model": config.model,
        "data": config.data,
        "eval_data": plan.eval,
        "bootstrap": ensemble.bootstrap,
        "members": entries,
        "aggregate": ensemble.aggregate,
        "lambda": ensemble.lam,
    }
    (output_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return EnsembleTrainResult(RewardEnsemble(members, ensemble.aggregate, ensemble.lam, manifest), output_dir,
                               summaries)
