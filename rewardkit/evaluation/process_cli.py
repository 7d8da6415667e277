"""`rewardkit eval` on step-labelled data (`evaluation/process.py`): a table, JSON and a report."""

from __future__ import annotations

import argparse

from rewardkit.cli_options import check_model_source, check_output_dir, check_output_file, log_load_report
from rewardkit.errors import RewardkitError
from rewardkit.tables import text_table


def run_process_eval(args: argparse.Namespace) -> int:
    from rewardkit.data.step_formats import STEP_FORMATS, load_steps

    if args.format != "auto" and args.format not in STEP_FORMATS:
        raise RewardkitError(f"--format {args.format} is not a step format, but --data holds step-labelled "
                             f"solutions; use auto or one of: {', '.join(STEP_FORMATS)}")
    for flag, given in (("--calibrate-on", args.calibrate_on), ("--calibrate-fraction", args.calibrate_fraction),
                        ("--sections", args.sections), ("--columns", args.columns)):
        if given is not None:
            raise RewardkitError(f"{flag} applies to preference data, not to step-labelled solutions")
    check_model_source(args.model, "--model", "reward model")
    check_output_file(args.output)
    check_output_dir(args.report, "--report")

    def load(source: str):
        dataset = load_steps(source, format=args.format, limit=args.limit,
                             on_error="skip" if args.skip_bad_records else "raise")
        log_load_report(source, dataset.report)
        return dataset

    datasets = {source: load(source) for source in args.data}  # bad data fails before the model loads
    threshold_set = load(args.threshold_data) if args.threshold_data else None

    from rewardkit.distributed import process_state
    from rewardkit.evaluation.cli import write_results
    from rewardkit.evaluation.options import ProcessEvalOptions
    from rewardkit.evaluation.process import evaluate_steps, scored_threshold_data
    from rewardkit.evaluation.process_report import write_process_report
    from rewardkit.model import RewardModel

    state = process_state()
    model = RewardModel.from_pretrained(args.model, max_length=args.max_length).to(state.device)
    options = ProcessEvalOptions(batch_size=args.batch_size, bootstrap_samples=args.bootstrap_samples,
                                 seed=args.seed, threshold=args.threshold,
                                 validation_fraction=args.validation_fraction, progress=args.progress)
    if args.threshold is not None:
        options.threshold_source = "given (--threshold)"
    chosen_on = scored_threshold_data(model, threshold_set, options) if threshold_set is not None else None
    results = {source: evaluate_steps(model, dataset, options, chosen_on) for source, dataset in datasets.items()}
    if state.is_main_process:
        write_results(args, results, format_step_results(results), write_process_report)
    return 0


STEP_HEADER = ["dataset", "solutions", "F1", "95% CI", "acc err", "acc cor", "threshold", "oracle F1", "step AUROC"]


def format_step_results(results: dict[str, dict]) -> str:
    """One line per dataset; the first-error columns are empty for data without ProcessBench labels."""
    rows = []
    for source, r in results.items():
        f = r.get("first_error")
        if f is None:
            rows.append([source, r["num_solutions"], None, None, None, None, None, None, r["step"]["auroc"]])
            continue
        rows.append([source, r["num_solutions"], f["f1"], f"[{f['f1_ci']['low']:.3f}, {f['f1_ci']['high']:.3f}]",
                     f["accuracy_erroneous"], f["accuracy_correct"], f["threshold"], r["oracle"]["f1"],
                     r["step"]["auroc"]])
    return text_table(STEP_HEADER, rows)
