"""`rewardkit eval`: accuracy with bootstrap intervals, subsets, rankings, agreement, calibration and length bias.

Registered on the main CLI by `add_eval_parser(subparsers)`; the handler is `run_eval`.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from rewardkit.cli import add_evaluation_inputs
from rewardkit.errors import RewardkitError

logger = logging.getLogger("rewardkit")


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a reward model on labelled preference data (accuracy, calibration, length bias, ...)",
        description="Pairwise accuracy (equal rewards count half; pairs labelled as ties are left out and counted) "
        "with a bootstrap interval over prompts, per-subset accuracy with RewardBench-style sections, top-1 and "
        "Kendall tau on K-wise data, the labeller agreement ceiling when pairs carry several labels, calibration of "
        "sigmoid(r_w - r_l) (ECE, Brier, log-loss, optional temperature) and length bias. Prints a table, writes "
        "JSON (--output) and a Markdown/HTML report with plots (--report).",
    )
    p.add_argument("--model", required=True, help="reward model directory")
    add_evaluation_inputs(p)
    p.add_argument("--report", help="directory for report.md, report.html, plots/*.png and metrics.json")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per forward pass (32)")
    p.add_argument("--max-length", type=int, help="override the checkpoint's max tokens per prompt+response")
    p.add_argument("--limit", type=int, help="read at most this many groups per dataset")
    p.add_argument("--skip-bad-records", action="store_true", help="skip invalid records (counted) instead of stopping")
    p.add_argument("--sections", help="JSON/YAML mapping {section: [subset, ...]} (default: each subset its own)")
    calibration = p.add_mutually_exclusive_group()
    calibration.add_argument("--calibrate-on", help="validation data to fit a temperature on, applied to every dataset")
    calibration.add_argument("--calibrate-fraction", type=float,
                             help="fit the temperature on this share of each dataset's prompts, measure on the rest")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the interval (1000)")
    steps = p.add_argument_group("step-labelled data (process RMs: ProcessBench, PRM800K, Math-Shepherd)")
    threshold = steps.add_mutually_exclusive_group()
    threshold.add_argument("--threshold", type=float,
                           help="probability below which a step is predicted wrong (default: chosen on a split)")
    threshold.add_argument("--threshold-data", help="step data to choose the threshold on (as ProcessBench does "
                           "with GSM8K), applied to every --data")
    steps.add_argument("--validation-fraction", type=float, default=0.3,
                       help="share of each dataset's problems the threshold is chosen on, the rest measured (0.3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the calibration split (0)")
    p.add_argument("--no-progress", dest="progress_bar", action="store_false", help="hide the progress bar")
    p.set_defaults(handler=run_eval)
    return p


def run_eval(args: argparse.Namespace) -> int:
    from rewardkit.data.step_formats import is_step_data

    if any(is_step_data(source) for source in args.data):
        from rewardkit.evaluation.process_cli import run_process_eval

        return run_process_eval(args)
    from rewardkit.data import FORMATS, load_preferences
    from rewardkit.evaluation.report import write_eval_report
    from rewardkit.evaluation.subsets import load_sections
    from rewardkit.evaluation.suite import EvalOptions, evaluate_dataset, fit_temperature_on
    from rewardkit.model import RewardModel

    if args.format != "auto" and args.format not in FORMATS:
        raise RewardkitError(f"unknown format {args.format!r}; expected 'auto' or one of: {', '.join(FORMATS)}")
    if args.calibrate_fraction is not None and not 0 < args.calibrate_fraction < 1:
        raise RewardkitError(f"--calibrate-fraction must be between 0 and 1, got {args.calibrate_fraction}")
    for name in ("batch_size", "bootstrap", "limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise RewardkitError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")

    def load(source: str):
        dataset = load_preferences(source, format=args.format, on_error="skip" if args.skip_bad_records else "raise",
                                   limit=args.limit)
        if dataset.report.num_skipped:
            logger.warning("%s: %s", source, dataset.report.summary())
        return dataset

    from rewardkit.distributed import process_state

    state = process_state()  # launched as N processes, each scores 1/N of the responses
    model = RewardModel.from_pretrained(args.model, max_length=args.max_length).to(state.device)
    options = EvalOptions(batch_size=args.batch_size, bootstrap_samples=args.bootstrap, seed=args.seed,
                          sections=load_sections(args.sections) if args.sections else None,
                          calibrate_fraction=args.calibrate_fraction, progress=args.progress_bar)
    if args.calibrate_on:
        options.temperature, count = fit_temperature_on(model, load(args.calibrate_on), args.batch_size)
        options.temperature_source = f"{args.calibrate_on} ({count} comparisons)"
    results = {source: evaluate_dataset(model, load(source), options) for source in args.data}
    if state.is_main_process:
        write_results(args, results, print_table, write_eval_report)
    return 0


def write_results(args: argparse.Namespace, results: dict, print_results, write_report) -> None:
    """Print the table, then write --output (JSON) and --report (Markdown, HTML, plots) when asked."""
    print_results(results)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
        print(f"metrics -> {args.output}")
    if args.report:
        files = write_report(results, args.report, model=args.model)
        print(f"report -> {files['markdown']} (and {files['html'].name}, plots/, metrics.json)")


def print_table(results: dict[str, dict]) -> None:
    print(f"{'dataset':<40} {'accuracy':>9} {'95% CI':>15} {'margin':>8} {'pairs':>7} {'ties':>5} {'truncated':>9} "
          f"{'ECE':>6} {'len rho':>7}")
    for source, m in results.items():
        interval = f"[{m['accuracy_ci']['low']:.3f}, {m['accuracy_ci']['high']:.3f}]"
        print(f"{source[-40:]:<40} {m['accuracy']:>9.4f} {interval:>15} "
              f"{m['mean_margin']:>8.3f} {m['num_comparisons']:>7d} {m['num_tied_labels']:>5d} {m['truncated']:>9d} "
              f"{m['calibration']['before']['ece']:>6.3f} {m['length']['spearman_tokens']:>7.3f}")
