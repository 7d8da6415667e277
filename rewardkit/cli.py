"""The `rewardkit` command line: a thin layer over the Python API.

User mistakes (bad paths, bad records, bad options) print one line starting with "rewardkit: error:" and exit
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys

from rewardkit.cli_options import (
    ERROR_PREFIX,
    ArgumentParser,
    add_scoring_inputs,
    add_train_options,
    check_model_source,
    read_items,
    read_solutions,
    train_config,
)
from rewardkit.errors import RewardkitError

logger = logging.getLogger("rewardkit")


# ------------------------------------------------------------------------------------------------------ train
def _add_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a reward model from an SFT causal LM on preference data or step-labelled solutions",
        description="Train a pairwise (Bradley-Terry) outcome reward model on preference data, or a process reward "
        "model on step-labelled solutions (--objective steps, chosen by auto for step data). The SFT model's "
        "vocabulary head is replaced by a scalar head (a process RM: one reward per step, at a separator token); "
        "the result in --output is a standard transformers checkpoint. Options not given on "
        "the command line come from --config (YAML), then from the defaults shown.",
    )
    add_train_options(p)
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    config = train_config(args)  # a mistake is reported before torch loads (and once, before N processes start)
    from rewardkit.distributed import launched, process_state, relaunch

    if (args.num_processes or 1) > 1 and not launched():
        return relaunch(args.num_processes, args.argv)
    from rewardkit.training import train

    result = train(config)  # reads the data before it builds the model
    if not process_state().is_main_process:
        return 0
    evaluation = result.eval_metrics
    line = f"trained {result.steps} steps -> {result.output_dir}"
    if evaluation and "num_steps" in evaluation:  # a process RM
        line += (f"; eval step accuracy {evaluation['accuracy']:.3f}, step AUROC {evaluation['auroc']:.3f} on "
                 f"{evaluation['num_steps']} labelled steps")
    elif evaluation:
        line += f"; eval accuracy {evaluation['accuracy']:.3f} on {evaluation['num_comparisons']} comparisons"
    print(line)
    return 0


# ------------------------------------------------------------------------------------------------------ score
def _add_score(subparsers) -> None:
    p = subparsers.add_parser(
        "score",
        help="score responses with a trained reward model",
        description="Write one JSON line per (prompt, response) with its reward. --data may hold "
        "{'prompt', 'response'} records or any preference format (then every response is scored), or solutions "
        "as steps ({'problem', 'steps': [...]}, e.g. ProcessBench): then each line has the solution's "
        "step_rewards and its min, product, last and mean step probability.",
    )
    p.add_argument("--model", required=True, help="reward model directory (from `rewardkit train`)")
    add_scoring_inputs(p)
    p.add_argument("--raw", action="store_true", help="raw rewards, without the checkpoint's normalization")
    p.add_argument("--no-progress", dest="progress_bar", action="store_false", help="hide the progress bar")
    p.set_defaults(handler=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    check_model_source(args.model, "--model", "reward model")
    solutions = read_solutions(args)  # step data: per-step rewards; None: one reward per response
    items = read_items(args) if solutions is None else []
    from rewardkit.distributed import process_state, shard_and_score
    from rewardkit.model import RewardModel
    from rewardkit.scoring import write_scored

    state = process_state()  # launched as N processes, each scores 1/N of the items
    model = RewardModel.from_pretrained(args.model, max_length=args.max_length).to(state.device)
    if solutions is not None:
        return _score_steps(args, model, solutions, state.is_main_process)
    output = shard_and_score(
        model,
        [item["prompt"] for item in items],
        [item["response"] for item in items],
        batch_size=args.batch_size,
        normalize=not args.raw,
        progress=args.progress_bar,
    )
    if not state.is_main_process:
        return 0
    rows = zip(items, output.rewards.tolist(), output.truncated, strict=True)
    write_scored(({**item, "reward": reward, "truncated": truncated} for item, reward, truncated in rows), args.output)
    if any(output.truncated):
        logger.warning("%d of %d sequences exceeded max_length=%d and were truncated", sum(output.truncated),
                       len(items), model.max_length)
    if args.output:
        print(f"scored {len(items)} responses -> {args.output}")
    return 0


def _score_steps(args: argparse.Namespace, model, solutions: list[dict], is_main: bool) -> int:
    """One JSON line per solution: its step rewards and the solution scores built from them."""
    from rewardkit.distributed import shard_and_score_steps
    from rewardkit.model.step_scores import AGGREGATIONS
    from rewardkit.scoring import write_scored

    scores = shard_and_score_steps(model, [s["prompt"] for s in solutions], [s["steps"] for s in solutions],
                                   batch_size=args.batch_size, normalize=not args.raw, progress=args.progress_bar)
    if not is_main:
        return 0
    aggregates = {how: scores.aggregate(how).tolist() for how in AGGREGATIONS}
    rows = ({**solution, "step_rewards": rewards.tolist(), "steps_scored": len(rewards), "truncated": truncated,
             **{how: aggregates[how][i] for how in AGGREGATIONS}}
            for i, (solution, rewards, truncated) in enumerate(zip(solutions, scores.rewards, scores.truncated,
                                                                    strict=True)))  # fmt: skip
    write_scored(rows, args.output)
    cut = sum(n - len(r) for n, r in zip(scores.num_steps, scores.rewards, strict=True))
    if cut:
        logger.warning("%d steps exceeded max_length=%d and got no reward", cut, model.max_length)
    if args.output:
        print(f"scored {sum(len(r) for r in scores.rewards)} steps of {len(solutions)} solutions -> {args.output}")
    return 0


# ------------------------------------------------------------------------------------------------------- demo
def _add_demo(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the whole life of a reward model in a synthetic world with a known gold reward",
        description="Train an SFT policy, collect K-wise rankings from biased simulated labellers, train reward "
        "models, run best-of-n and PPO against them with held-out evaluation, compare with ceilings, baselines and "
        "mechanism controls, and write a report (Markdown, HTML, PNG plots, results.json) showing where the gold "
        "reward peaks and falls, every verdict with its interval. No downloads; one seed takes under 10 minutes "
        "on 2 CPU cores (--quick: under 2); --seeds runs one independent world per seed, one after the other.",
    )
    p.add_argument("--output", default="demo-output", help="directory for the report and artifacts (demo-output)")
    p.add_argument("--quick", action="store_true", help="smaller sizes for a run under 2 minutes per seed")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="seed of the world and of every stage (0)")
    seeds.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                       help="one independent world per seed; the report gives means with intervals over seeds")
    p.add_argument("--mitigations", action="store_true",
                   help="also train a reward-model ensemble and a DPO policy (in the first seed's world) and compare "
                   "their over-optimization with the single RM's (adds a few minutes)")
    p.add_argument("--workers", type=int, help="processes that run a seed's PPO runs side by side; the results do "
                   "not depend on it (default: the number of CPUs, at most 4)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress and stage headings")
    p.add_argument("--redraw", action="store_true", help="run nothing: write the report and plots again from "
                   "OUTPUT/results.json (and timings.json) of an earlier run")
    p.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from rewardkit.errors import RewardkitError

    seeds = args.seeds or [0 if args.seed is None else args.seed]
    if len(set(seeds)) != len(seeds):
        raise RewardkitError(f"--seeds: each seed once, got {' '.join(map(str, seeds))}")
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise RewardkitError(f"--output {args.output} is a file; give a directory")
    if args.workers is not None and args.workers < 1:
        raise RewardkitError(f"--workers must be at least 1, got {args.workers}")
    workers = args.workers or min(os.cpu_count() or 1, 4)
    if args.redraw:
        return _redraw_demo_report(Path(args.output))
    from rewardkit.demo import DemoConfig, run_demo, write_report
    from rewardkit.demo.report import summary_lines
    from rewardkit.progress import Console

    console = Console(enabled=args.progress)
    limit = "2 minutes" if args.quick else "10 minutes"
    what = (f"{len(seeds)} independent worlds (seeds {', '.join(map(str, seeds))}), one after the other"
            if len(seeds) > 1 else f"seed {seeds[0]}")
    console.print(f"rewardkit demo, {what}: under {limit} per seed on 2 idle CPU cores -> {args.output}/")
    config = DemoConfig.quick(seed=seeds[0]) if args.quick else DemoConfig(seed=seeds[0])
    results = run_demo(config, args.output, seeds=seeds, console=console, workers=workers)
    if args.mitigations:
        from rewardkit.demo.mitigations import MitigationsConfig, run_mitigations
        from rewardkit.demo.mitigations import summary_lines as mitigation_lines

        mitigations = MitigationsConfig.quick() if args.quick else MitigationsConfig()
        results["mitigations"] = run_mitigations(Path(args.output) / f"seed-{seeds[0]}", mitigations, console)
    with console.stage("Report", "plots, report.md, report.html"):
        files = write_report(results, args.output)
    lines = summary_lines(results) + (mitigation_lines(results["mitigations"]) if args.mitigations else [])
    print("\n".join(f"- {line}" for line in lines))
    print(f"report: {files['markdown']} (and {files['html'].name}, plots/, results.json, timings.json)")
    return 0


def _redraw_demo_report(output: pathlib.Path) -> int:
    import json

    results_file = output / "results.json"
    if not results_file.is_file():
        raise RewardkitError(f"--redraw: {results_file} not found; give the --output of an earlier demo run")
    from rewardkit.demo import write_report

    files = write_report(json.loads(results_file.read_text()), output)
    print(f"report: {files['markdown']} (and {files['html'].name}, plots/) redrawn from {results_file}")
    return 0


# ------------------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from rewardkit import __version__

    parser = ArgumentParser(prog="rewardkit", description="Train, evaluate, audit and serve reward models.")
    parser.add_argument("--version", action="version", version=f"rewardkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from rewardkit.audit.cli import add_audit_parser
    from rewardkit.dpo.cli import add_dpo_parser
    from rewardkit.ensemble.cli import add_ensemble_parser
    from rewardkit.evaluation.cli import add_eval_parser
    from rewardkit.experiments.cli import add_experiment_parser
    from rewardkit.label.cli import add_label_parser
    from rewardkit.serving.cli import add_serve_parser

    commands = (_add_demo, _add_train, _add_score, add_eval_parser, add_audit_parser, add_serve_parser,
                add_ensemble_parser, add_dpo_parser, add_label_parser, add_experiment_parser)
    for add in commands:
        add(subparsers)
    return parser


def command_paths(parser: argparse.ArgumentParser | None = None) -> list[list[str]]:
    """Every command, nested ones included: [['demo'], ..., ['ensemble'], ['ensemble', 'train'], ...]."""
    paths = []
    for action in (parser or build_parser())._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                paths += [[name], *([name, *path] for path in command_paths(child))]
    return paths


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "argv" in vars(args):
        args.argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.INFO, format="rewardkit: %(message)s", stream=sys.stderr)
    if False in (vars(args).get("progress"), vars(args).get("progress_bar")):  # --no-progress: transformers' too
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    try:
        return args.handler(args)
    except (RewardkitError, FileNotFoundError) as error:
        print(f"{ERROR_PREFIX} {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rewardkit: interrupted (a training run continues from its last checkpoint with --resume)",
              file=sys.stderr)
        return 130
