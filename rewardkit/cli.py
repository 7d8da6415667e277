"""The `rewardkit` command line: a thin layer over the Python API.

User mistakes (bad paths, bad records, bad options) print one line starting with "rewardkit: error:" and exit
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

logger = logging.getLogger("rewardkit")


# ------------------------------------------------------------------------------------------------------ train
def _add_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a reward model from an SFT causal LM on preference data",
        description="Train a pairwise (Bradley-Terry) reward model. The SFT model's vocabulary head is replaced "
        "by a scalar head; the result in --output is a standard transformers checkpoint. Options not given on "
        "the command line come from --config (YAML), then from the defaults shown.",
    )
    add_train_options(p)
    p.set_defaults(handler=_run_train)


def add_train_options(p: argparse.ArgumentParser) -> None:
    """The options of `rewardkit train` and `rewardkit ensemble train`, defined once so the two never drift apart.

    Every option defaults to None, so that --config and then TrainConfig's defaults (shown in the help) fill in what
    is left out. Also sets the `argv` default that `main()` fills in, for --num-processes to start the command again.
    """
    p.add_argument("--model", help="SFT causal LM: local directory or Hugging Face model id")
    p.add_argument("--data", nargs="+", help="training data: .jsonl/.json/.csv/.parquet files or dataset ids")
    p.add_argument("--output", dest="output_dir", help="directory for the trained model and checkpoints")
    p.add_argument("--eval-data", nargs="+", help="held-out data (default: split --eval-fraction off --data)")
    p.add_argument("--eval-fraction", type=float, help="share of training prompts held out when no --eval-data (0.05)")
    p.add_argument("--format", help="data format: auto, pairs, dialogue, ranking, pandalm, oasst, alpacaeval, ...")
    p.add_argument("--max-length", type=int, help="max tokens per prompt+response (default: model limit, <= 512)")
    p.add_argument("--max-steps", type=int, help="optimizer steps (overrides --epochs)")
    p.add_argument("--epochs", type=float, help="passes over the training data (1)")
    p.add_argument("--batch-size", type=int, help="prompts per micro-batch; a pair counts as one prompt (8)")
    p.add_argument("--grad-accum", dest="gradient_accumulation_steps", type=int, help="micro-batches per step (1)")
    p.add_argument("--lr", dest="learning_rate", type=float, help="peak learning rate (1e-5)")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay (0)")
    p.add_argument("--warmup-ratio", type=float, help="share of steps for linear warmup before cosine decay (0.03)")
    p.add_argument("--center-rewards", dest="center_rewards_coefficient", type=float,
                   help="coefficient of the (r_w + r_l)^2 centering penalty (0)")
    p.add_argument("--seed", type=int, help="random seed (0)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N (auto)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="bf16 autocast; auto = bf16 on capable GPUs")
    p.add_argument("--gradient-checkpointing", action="store_true", default=None, help="trade compute for memory")
    p.add_argument("--share-prefix", action=argparse.BooleanOptionalAction, default=None,
                   help="run each prompt once per group, its responses attending to it (Llama-like decoders; on)")
    p.add_argument("--lora-rank", type=int, help="train LoRA adapters of this rank plus the head (needs peft)")
    p.add_argument("--random-init", action="store_true", default=None, help="same architecture, random weights")
    p.add_argument("--eval-steps", type=int, help="validate every N steps (100)")
    p.add_argument("--save-steps", type=int, help="checkpoint every N steps (100)")
    p.add_argument("--logging-steps", type=int, help="write training metrics every N steps (10)")
    p.add_argument("--skip-bad-records", action="store_true", default=None,
                   help="skip invalid records (counted and reported) instead of stopping at the first one")
    p.add_argument("--no-normalize", dest="normalize_rewards", action="store_false", default=None,
                   help="do not centre/scale rewards on the eval set after training")
    p.add_argument("--tensorboard", action="store_true", default=None, help="also log to TensorBoard")
    p.add_argument("--config", help="YAML file with TrainConfig options (command-line flags win)")
    p.add_argument("--resume", action="store_true", default=None, help="continue from the last checkpoint in --output")
    p.add_argument("--no-progress", dest="progress_bar", action="store_false", default=None, help="hide progress bars")
    p.add_argument("--num-processes", type=int, help="data-parallel processes on this machine, started through "
                   "Accelerate (1); for several machines, FSDP or DeepSpeed use `accelerate launch -m rewardkit train`")
    p.set_defaults(argv=[])  # main() fills in argv: --num-processes starts the same command again


def _run_train(args: argparse.Namespace) -> int:
    from rewardkit.distributed import launched, process_state, relaunch

    if (args.num_processes or 1) > 1 and not launched():
        return relaunch(args.num_processes, args.argv)
    from rewardkit.training import TrainConfig, train

    not_options = ("command", "handler", "config", "num_processes", "argv")
    overrides = {k: v for k, v in vars(args).items() if v is not None and k not in not_options}
    config = TrainConfig.from_yaml(args.config, **overrides) if args.config else TrainConfig(**overrides)
    result = train(config)
    if not process_state().is_main_process:
        return 0
    evaluation = result.eval_metrics
    line = f"trained {result.steps} steps -> {result.output_dir}"
    if evaluation:
        line += f"; eval accuracy {evaluation['accuracy']:.3f} on {evaluation['num_comparisons']} comparisons"
    print(line)
    return 0


# ------------------------------------------------------------------------------------------------------ score
def _add_score(subparsers) -> None:
    p = subparsers.add_parser(
        "score",
        help="score responses with a trained reward model",
        description="Write one JSON line per (prompt, response) with its reward. --data may hold "
        "{'prompt', 'response'} records or any preference format (then every response is scored).",
    )
    p.add_argument("--model", required=True, help="reward model directory (from `rewardkit train`)")
    add_scoring_inputs(p)
    p.add_argument("--raw", action="store_true", help="raw rewards, without the checkpoint's normalization")
    p.add_argument("--no-progress", dest="progress_bar", action="store_false", help="hide the progress bar")
    p.set_defaults(handler=_run_score)


def add_scoring_inputs(p: argparse.ArgumentParser) -> None:
    """--data/--output/--format/--batch-size, shared by every command that writes one reward per response."""
    p.add_argument("--data", required=True, help="file with prompt/response records or preference data")
    p.add_argument("--output", help="JSONL output file (default: standard output)")
    p.add_argument("--format", default="auto", help="preference data format when not prompt/response records")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per forward pass (32)")


def add_evaluation_inputs(p: argparse.ArgumentParser) -> None:
    """--data/--format/--output, shared by every command that measures accuracy on labelled preference data."""
    p.add_argument("--data", required=True, nargs="+", help="preference data file(s) or dataset id(s)")
    p.add_argument("--format", default="auto", help="data format (auto)")
    p.add_argument("--output", help="JSON file for the metrics (default: only print)")


def _run_score(args: argparse.Namespace) -> int:
    from rewardkit.distributed import process_state, shard_and_score
    from rewardkit.model import RewardModel
    from rewardkit.scoring import read_scoring_inputs, write_scored

    state = process_state()  # launched as N processes, each scores 1/N of the items
    model = RewardModel.from_pretrained(args.model).to(state.device)
    items = read_scoring_inputs(args.data, args.format)
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


# ------------------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rewardkit", description="Train, evaluate, audit and serve reward models.")
    parser.add_argument("--version", action="version", version="rewardkit 0.1.0")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from rewardkit.audit.cli import add_audit_parser
    from rewardkit.dpo.cli import add_dpo_parser
    from rewardkit.ensemble.cli import add_ensemble_parser
    from rewardkit.evaluation.cli import add_eval_parser
    from rewardkit.experiments.cli import add_experiment_parser
    from rewardkit.serving.cli import add_serve_parser

    commands = (_add_demo, _add_train, _add_score, add_eval_parser, add_audit_parser, add_serve_parser,
                add_ensemble_parser, add_dpo_parser, add_experiment_parser)
    for add in commands:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "argv" in vars(args):
        args.argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.INFO, format="rewardkit: %(message)s", stream=sys.stderr)
    if False in (vars(args).get("progress"), vars(args).get("progress_bar")):  # --no-progress: transformers' too
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    from rewardkit.errors import RewardkitError

    try:
        return args.handler(args)
    except (RewardkitError, FileNotFoundError) as error:
        print(f"rewardkit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rewardkit: interrupted (a training run continues from its last checkpoint with --resume)",
              file=sys.stderr)
        return 130
