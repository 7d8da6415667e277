"""`rewardkit ensemble train|score|eval`: reward-model ensembles from the command line.

Register with `add_ensemble_parser(subparsers)`; each handler takes the parsed args and returns an exit code.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rewardkit.cli_options import (
    add_config_options,
    add_evaluation_inputs,
    add_scoring_inputs,
    add_train_options,
    bounded,
    check_model_source,
    check_output_file,
    load_data,
    read_items,
    train_config,
)
from rewardkit.ensemble.config import AGGREGATES, EnsembleConfig
from rewardkit.errors import RewardkitError
from rewardkit.tables import text_table


def add_ensemble_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "ensemble",
        help="train and score reward-model ensembles (mean, worst-case, uncertainty-weighted)",
        description="Ensembles of reward models differing in seed and optionally in bootstrap resamples of the "
        "data (Coste et al. 2023). An ensemble directory holds standard reward-model checkpoints and an "
        "ensemble.json manifest.",
    )
    commands = p.add_subparsers(dest="ensemble_command", required=True, metavar="COMMAND")
    _add_train(commands)
    _add_score(commands)
    _add_eval(commands)


def _aggregation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--aggregate", choices=AGGREGATES, help="mean, min (worst case) or uwo (mean - lambda * std); "
                   "default: the ensemble's own")
    p.add_argument("--lambda", dest="lam", type=bounded("--lambda", float, at_least=0),
                   help="uwo's penalty on disagreement (default: the ensemble's)")


# ------------------------------------------------------------------------------------------------------ train
def _add_train(commands) -> None:
    p = commands.add_parser(
        "train",
        help="train N reward models with one command",
        description="Train --members reward models like `rewardkit train` (same options), member i with seed "
        "--seed + i, optionally each on a bootstrap resample of the training records; all share one validation "
        "split. Writes member-<i>/ checkpoints and ensemble.json into --output.",
    )
    add_train_options(p)
    add_config_options(p, EnsembleConfig)
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    if (args.num_processes or 1) > 1:
        raise RewardkitError("ensemble train runs its members one after another in one process; "
                             "--num-processes is not supported here")
    ensemble = EnsembleConfig(args.members, args.bootstrap, args.aggregate, args.lam)
    ensemble.validate()
    config = train_config(args, output_dir="runs/reward-ensemble")
    from rewardkit.ensemble.train import train_ensemble

    result = train_ensemble(config, ensemble)
    for entry in result.ensemble.manifest["members"]:
        accuracy = entry["eval_accuracy"]
        print(f"{entry['path']}: seed {entry['seed']}" + (f", eval accuracy {accuracy:.3f}" if accuracy else ""))
    print(f"ensemble of {len(result.ensemble.members)} reward models -> {result.output_dir}")
    return 0


# ------------------------------------------------------------------------------------------------------ score
def _add_score(commands) -> None:
    p = commands.add_parser(
        "score",
        help="score responses with an ensemble: aggregated reward and per-example disagreement",
        description="Write one JSON line per (prompt, response): the aggregated reward, the mean, min and std "
        "(disagreement) over members, and each member's normalized reward.",
    )
    p.add_argument("--model", required=True, help="ensemble directory (from `rewardkit ensemble train`)")
    add_scoring_inputs(p)
    _aggregation_options(p)
    p.set_defaults(handler=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    check_model_source(args.model, "--model", "ensemble")
    items = read_items(args)
    from rewardkit.ensemble.ensemble import RewardEnsemble
    from rewardkit.scoring import write_scored

    ensemble = RewardEnsemble.from_pretrained(args.model, max_length=args.max_length)
    output = ensemble.score([item["prompt"] for item in items], [item["response"] for item in items],
                            batch_size=args.batch_size, aggregate=args.aggregate, lam=args.lam, return_details=True)
    write_scored(({
        **item,
        "reward": output.rewards[i].item(),
        "mean": output.mean[i].item(),
        "min": output.min[i].item(),
        "std": output.std[i].item(),
        "members": output.member_rewards[:, i].tolist(),
        "truncated": output.truncated[i],
    } for i, item in enumerate(items)), args.output)
    if args.output:
        print(f"scored {len(items)} responses with {len(ensemble.members)} members "
              f"({args.aggregate or ensemble.aggregate}) -> {args.output}")
    return 0


# ------------------------------------------------------------------------------------------------------- eval
def _add_eval(commands) -> None:
    p = commands.add_parser(
        "eval",
        help="pairwise accuracy of every member and every aggregation",
        description="Pairwise accuracy and mean margin of each member and of the mean, min and uwo aggregations "
        "on labelled preference data (each member scores every response once).",
    )
    p.add_argument("--model", required=True, help="ensemble directory")
    add_evaluation_inputs(p)
    p.add_argument("--lambda", dest="lam", type=bounded("--lambda", float, at_least=0),
                   help="uwo's penalty on disagreement (default: the ensemble's)")
    p.set_defaults(handler=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    check_model_source(args.model, "--model", "ensemble")
    check_output_file(args.output)
    datasets = {source: load_data(args, source) for source in args.data}  # every file, before the members load
    from rewardkit.data.collate import encode_dataset
    from rewardkit.ensemble.ensemble import RewardEnsemble
    from rewardkit.ensemble.evaluation import evaluate_ensemble

    ensemble = RewardEnsemble.from_pretrained(args.model, max_length=args.max_length)
    results = {}
    for source, dataset in datasets.items():
        metrics = evaluate_ensemble(ensemble, encode_dataset(dataset, ensemble.tokenizer, ensemble.max_length),
                                    args.batch_size, args.lam)
        results[source] = {name: m.to_dict() for name, m in metrics.items()}
    print(text_table(["dataset", "scorer", "accuracy", "margin", "pairs"],
                     [[source, name, m["accuracy"], m["mean_margin"], m["num_comparisons"]]
                      for source, by_scorer in results.items() for name, m in by_scorer.items()]))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
        print(f"metrics -> {args.output}")
    return 0
