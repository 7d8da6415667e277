"""`rewardkit eval`: accuracy with bootstrap intervals, subsets, rankings, agreement, calibration and length bias.

Registered on the main CLI by `add_eval_parser(subparsers)`; the handler is `run_eval`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from rewardkit.cli_options import (
    add_config_options,
    add_evaluation_inputs,
    bounded,
    check_model_source,
    check_output_dir,
    check_output_file,
    load_data,
)
from rewardkit.data.options import StepDataOptions
from rewardkit.evaluation.options import EvalOptions, ProcessEvalOptions
from rewardkit.tables import text_table


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a reward model on labelled preference data (accuracy, calibration, length bias, ...)",
        description="Pairwise accuracy (equal rewards count half; pairs labelled as ties are left out and counted) "
        "with a bootstrap interval over prompts, per-subset accuracy with RewardBench-style sections, top-1 and "
        "Kendall tau on K-wise data, the labeller agreement ceiling when pairs carry several labels, calibration of "
        "sigmoid(r_w - r_l) (ECE, Brier, log-loss, optional temperature) and length bias. Prints a table, writes "
        "JSON (--output) and a Markdown/HTML report with plots (--report). On step-labelled solutions "
        "(ProcessBench, PRM800K, Math-Shepherd): ProcessBench's first-error F1 with the threshold chosen on a "
        "split, step AUROC and solution scores (min, product, last, mean of step probabilities).",
    )
    p.add_argument("--model", required=True, help="reward model directory")
    add_evaluation_inputs(p, batch_size=False, options=StepDataOptions)
    add_config_options(p, EvalOptions, only=("batch_size", "bootstrap_samples", "seed"))
    p.add_argument("--report", help="directory for report.md, report.html, plots/*.png and metrics.json")
    p.add_argument("--limit", type=bounded("--limit", at_least=1), help="read at most this many groups per dataset")
    p.add_argument("--sections", help="JSON/YAML mapping {section: [subset, ...]} (default: each subset its own)")
    calibration = p.add_mutually_exclusive_group()
    calibration.add_argument("--calibrate-on", help="validation data to fit a temperature on, applied to every dataset")
    add_config_options(calibration, EvalOptions, only=("calibrate_fraction",))
    steps = p.add_argument_group("step-labelled data (process RMs: ProcessBench, PRM800K, Math-Shepherd)")
    threshold = steps.add_mutually_exclusive_group()
    add_config_options(threshold, ProcessEvalOptions, only=("threshold",))
    threshold.add_argument("--threshold-data", help="step data to choose the threshold on (as ProcessBench does "
                           "with GSM8K), applied to every --data")
    add_config_options(steps, ProcessEvalOptions, only=("validation_fraction",))
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    p.set_defaults(handler=run_eval)
    return p


def run_eval(args: argparse.Namespace) -> int:
    from rewardkit.data.step_formats import STEP_FORMATS, is_step_data
    from rewardkit.evaluation.subsets import load_sections

    if args.format in STEP_FORMATS or any(is_step_data(source) for source in args.data):
        from rewardkit.evaluation.process_cli import run_process_eval

        return run_process_eval(args)

    check_model_source(args.model, "--model", "reward model")
    check_output_file(args.output)
    check_output_dir(args.report, "--report")
    sections = load_sections(args.sections) if args.sections else None
    datasets = {source: load_data(args, source, args.limit) for source in args.data}  # every file, before the model
    calibration_data = load_data(args, args.calibrate_on) if args.calibrate_on else None

    from rewardkit.distributed import process_state
    from rewardkit.evaluation.report import write_eval_report
    from rewardkit.evaluation.suite import evaluate_dataset, fit_temperature_on
    from rewardkit.model import RewardModel

    state = process_state()  # launched as N processes, each scores 1/N of the responses
    model = RewardModel.from_pretrained(args.model, max_length=args.max_length).to(state.device)
    options = EvalOptions(batch_size=args.batch_size, bootstrap_samples=args.bootstrap_samples, seed=args.seed,
                          sections=sections, calibrate_fraction=args.calibrate_fraction, progress=args.progress)
    if calibration_data is not None:
        options.temperature, count = fit_temperature_on(model, calibration_data, args.batch_size)
        options.temperature_source = f"{args.calibrate_on} ({count} comparisons)"
    results = {}
    for source, dataset in datasets.items():
        bar = f"scoring {Path(source).name}" if args.progress else False
        results[source] = evaluate_dataset(model, dataset, dataclasses.replace(options, progress=bar))
    if state.is_main_process:
        write_results(args, results, format_results(results), write_eval_report)
    return 0


def write_results(args: argparse.Namespace, results: dict, table: str, write_report) -> None:
    """Print the table, then write --output (JSON) and --report (Markdown, HTML, plots) when asked."""
    print(table)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
        print(f"metrics -> {args.output}")
    if args.report:
        files = write_report(results, args.report, model=args.model)
        print(f"report -> {files['markdown']} (and {files['html'].name}, plots/, metrics.json)")


HEADER = ["dataset", "accuracy", "95% CI", "margin", "pairs", "ties", "truncated", "ECE", "len rho", "top-1",
          "tau"]


def format_results(results: dict[str, dict]) -> str:
    """One line per dataset, its whole name; top-1 and Kendall tau where it has K-wise groups (K >= 3)."""
    rows = []
    for source, m in results.items():
        ranking = m.get("ranking") or {}
        rows.append([source, m["accuracy"], f"[{m['accuracy_ci']['low']:.3f}, {m['accuracy_ci']['high']:.3f}]",
                     m["mean_margin"], m["num_comparisons"], m["num_tied_labels"], m["truncated"],
                     m["calibration"]["before"]["ece"], m["length"]["spearman_tokens"],
                     ranking.get("top1_accuracy"), ranking.get("kendall_tau")])
    return text_table(HEADER, rows)
