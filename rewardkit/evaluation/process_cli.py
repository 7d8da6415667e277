"""`rewardkit eval` on step-labelled data (`evaluation/process.py`): a table, JSON and a report."""

from __future__ import annotations

import argparse
import logging

from rewardkit.errors import RewardkitError

logger = logging.getLogger("rewardkit")


def run_process_eval(args: argparse.Namespace) -> int:
    from rewardkit.data.step_formats import STEP_FORMATS, load_steps
    from rewardkit.distributed import process_state
    from rewardkit.evaluation.cli import write_results
    from rewardkit.evaluation.process import ProcessEvalOptions, evaluate_steps, scored_threshold_data
    from rewardkit.evaluation.process_report import write_process_report
    from rewardkit.model import RewardModel

    if args.format != "auto" and args.format not in STEP_FORMATS:
        raise RewardkitError(f"--format {args.format!r} is not a step format; expected auto or one of: "
                             f"{', '.join(STEP_FORMATS)}")
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise RewardkitError(f"--threshold must be a probability between 0 and 1, got {args.threshold}")
    if not 0 < args.validation_fraction < 1:
        raise RewardkitError(f"--validation-fraction must be between 0 and 1, got {args.validation_fraction}")
    for name in ("batch_size", "bootstrap", "limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise RewardkitError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")

    def load(source: str):
        dataset = load_steps(source, format=args.format, limit=args.limit,
                             on_error="skip" if args.skip_bad_records else "raise")
        if dataset.report.num_skipped:
            logger.warning("%s: %s", source, dataset.report.summary())
        return dataset

    datasets = {source: load(source) for source in args.data}  # bad data fails before the model loads
    threshold_set = load(args.threshold_data) if args.threshold_data else None
    state = process_state()
    model = RewardModel.from_pretrained(args.model, max_length=args.max_length).to(state.device)
    options = ProcessEvalOptions(batch_size=args.batch_size, bootstrap_samples=args.bootstrap, seed=args.seed,
                                 threshold=args.threshold, validation_fraction=args.validation_fraction,
                                 progress=args.progress_bar)
    if args.threshold is not None:
        options.threshold_source = "given (--threshold)"
    chosen_on = scored_threshold_data(model, threshold_set, options) if threshold_set is not None else None
    results = {source: evaluate_steps(model, dataset, options, chosen_on) for source, dataset in datasets.items()}
    if state.is_main_process:
        write_results(args, results, print_step_table, write_process_report)
    return 0


def print_step_table(results: dict[str, dict]) -> None:
    print(f"{'dataset':<36} {'solutions':>9} {'F1':>6} {'95% CI':>15} {'acc err':>7} {'acc cor':>7} "
          f"{'thresh':>6} {'oracle':>6} {'step AUROC':>10}")
    for source, r in results.items():
        if "first_error" not in r:
            print(f"{source[-36:]:<36} {r['num_solutions']:>9} {'':>6} {'':>15} {'':>7} {'':>7} {'':>6} {'':>6} "
                  f"{r['step']['auroc']:>10.3f}")
            continue
        f = r["first_error"]
        interval = f"[{f['f1_ci']['low']:.3f}, {f['f1_ci']['high']:.3f}]"
        print(f"{source[-36:]:<36} {r['num_solutions']:>9} {f['f1']:>6.3f} {interval:>15} "
              f"{f['accuracy_erroneous']:>7.3f} {f['accuracy_correct']:>7.3f} {f['threshold']:>6.3f} "
              f"{r['oracle']['f1']:>6.3f} {r['step']['auroc']:>10.3f}")
