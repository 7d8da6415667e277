"""`rewardkit dpo score|eval`: a DPO policy's implicit reward through the same scoring and pairwise evaluation
as reward models (RewardBench's DPO modes). Register with `add_dpo_parser(subparsers)`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rewardkit.cli_options import (
    add_evaluation_inputs,
    add_scoring_inputs,
    bounded,
    check_model_source,
    check_output_file,
    load_data,
    read_items,
)
from rewardkit.dpo.modes import MODES
from rewardkit.errors import RewardkitError
from rewardkit.tables import text_table


def add_dpo_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "dpo",
        help="score or evaluate preference data with a DPO policy's implicit reward",
        description="The implicit reward of a DPO policy, beta * (log pi(y|x) - log pi_ref(y|x)) summed over "
        "response tokens, or without a reference the sum or mean of log pi(y|x) (RewardBench).",
    )
    commands = p.add_subparsers(dest="dpo_command", required=True, metavar="COMMAND")
    score = commands.add_parser("score", help="write the implicit reward of every response",
                                description="One JSON line per (prompt, response) with its implicit reward.")
    _scorer_options(score)
    add_scoring_inputs(score)
    score.set_defaults(handler=_run_score)

    evaluate = commands.add_parser("eval", help="pairwise accuracy of the implicit reward on labelled data",
                                   description="Pairwise accuracy and mean margin, as `rewardkit eval` reports "
                                   "them for reward models.")
    _scorer_options(evaluate)
    add_evaluation_inputs(evaluate)
    evaluate.set_defaults(handler=_run_eval)


def _scorer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, help="the DPO-trained causal LM: local directory or hub id")
    p.add_argument("--ref", help="the reference model DPO started from (needed for --mode reference)")
    p.add_argument("--mode", choices=MODES, help="reference (default with --ref), sum (default without), mean")
    p.add_argument("--beta", type=bounded("--beta", float, above=0), default=0.1,
                   help="DPO's beta, scales the reference-mode reward (default: 0.1)")


def _check_scorer(args: argparse.Namespace) -> None:
    """Everything about the models that can be checked before one loads."""
    if args.mode == "reference" and args.ref is None:
        raise RewardkitError("--mode reference needs --ref (the SFT policy DPO started from); without one use "
                             "--mode sum or --mode mean")
    check_model_source(args.policy, "--policy", "causal LM")
    check_model_source(args.ref, "--ref", "causal LM")


def _scorer(args: argparse.Namespace):
    from rewardkit.dpo.scorer import DPOScorer

    return DPOScorer.from_pretrained(args.policy, args.ref, beta=args.beta, mode=args.mode, max_length=args.max_length)


def _run_score(args: argparse.Namespace) -> int:
    _check_scorer(args)
    items = read_items(args)
    from rewardkit.scoring import write_scored

    scorer = _scorer(args)
    rewards = scorer.score([i["prompt"] for i in items], [i["response"] for i in items], batch_size=args.batch_size)
    scored = zip(items, rewards.tolist(), strict=True)
    write_scored(({**item, "reward": reward} for item, reward in scored), args.output)
    if args.output:
        print(f"scored {len(items)} responses ({scorer.mode}) -> {args.output}")
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    _check_scorer(args)
    check_output_file(args.output)
    datasets = {source: load_data(args, source) for source in args.data}  # every file, before the models load
    scorer = _scorer(args)
    results = {source: scorer.evaluate(dataset, args.batch_size).to_dict() for source, dataset in datasets.items()}
    print(text_table(["dataset", "mode", "accuracy", "margin", "pairs"],
                     [[source, scorer.mode, m["accuracy"], m["mean_margin"], m["num_comparisons"]]
                      for source, m in results.items()]))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
        print(f"metrics -> {args.output}")
    return 0
