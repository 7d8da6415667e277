r"""PPO against a PRM's min score at a large learning rate, with and without `missing_eos_penalty`.

    rewardkit experiment prm --quick --output docs/experiments/prm      # first: the SFT policy and the RMs
    python examples/prm_ppo_missing_eos.py --experiment docs/experiments/prm \
        --output docs/experiments/prm/missing_eos.json

Why: a PRM's min over the steps written so far scores an unfinished solution (no wrong step yet, no answer either)
as high as a finished one. At lr 3e-4 PPO against it learned to stop answering; `missing_eos_penalty` (1.0: the
score is a probability, so a solution cut at max_new_tokens ends below every finished one) makes finishing pay.
Runs PPO from the experiment's SFT policy against its seed-0 human-label PRM, both ways, the same seed and batches,
and writes per step: the share of unfinished rollouts, the gold share of right answers, KL and the PRM's score.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardkit.experiments.prm import PRMExperimentConfig, machine, ppo_against
from rewardkit.model import RewardModel
from rewardkit.world.steps import StepWorld


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="docs/experiments/prm", help="a `rewardkit experiment prm` output")
    parser.add_argument("--output", default="docs/experiments/prm/missing_eos.json")
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    experiment = Path(args.experiment)
    recorded = json.loads((experiment / "results.json").read_text())
    config = PRMExperimentConfig.quick() if "--quick" in recorded["command"] else PRMExperimentConfig()
    policy = AutoModelForCausalLM.from_pretrained(experiment / "sft").eval()
    tokenizer = AutoTokenizer.from_pretrained(experiment / "sft")
    prm = RewardModel.from_pretrained(experiment / f"seed-{args.seed}" / "prm")
    world = StepWorld(config.world)
    runs, started = {}, time.perf_counter()
    for penalty in (None, 1.0):
        run_config = dataclasses.replace(config, ppo_steps=args.steps, ppo_learning_rate=args.learning_rate,
                                         ppo_missing_eos_penalty=penalty)
        runs[str(penalty)] = ppo_against(run_config, world, policy, tokenizer, prm, "min", args.seed)
        last = runs[str(penalty)][-5:]
        print(f"missing_eos_penalty={penalty}: last 5 steps unfinished "
              f"{sum(r['unfinished'] for r in last) / 5:.2f}, gold {sum(r['gold'] for r in last) / 5:.3f}")
    command = (f"python examples/prm_ppo_missing_eos.py --experiment {args.experiment} --output {args.output} "
               f"--learning-rate {args.learning_rate:g} --steps {args.steps} --seed {args.seed}")
    result = {"command": command, "learning_rate": args.learning_rate, "seed": args.seed,
              "rm": f"{args.experiment}/seed-{args.seed}/prm (PRM min)", "runs_by_penalty": runs,
              "seconds": time.perf_counter() - started, "machine": machine()}
    Path(args.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
