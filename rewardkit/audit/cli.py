"""`rewardkit audit`: perturbation probes that ask whether a reward model can be gamed.

Registered on the main CLI by `add_audit_parser(subparsers)`; the handler is `run_audit_command`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rewardkit.audit.probes import DEFAULT_THRESHOLD, FAMILIES, PROBES, select_probes
from rewardkit.cli_options import (
    add_batch_size,
    add_data_options,
    bounded,
    check_model_source,
    check_output_dir,
    check_output_file,
    load_data,
)
from rewardkit.data.loading import FORMATS
from rewardkit.errors import RewardkitError


def add_audit_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "audit",
        help="probe a reward model for length, format, sycophancy and gibberish exploits",
        description="Perturb labelled responses in ways that add no information (filler, repetition, markdown, "
        "flattery, a confident tone, gibberish, truncation) and report how often the perturbed response scores "
        "higher than the original (ties count half) and by how much. A probe is GAMEABLE when that win rate "
        f"exceeds --threshold. Probes: {', '.join(p.name for p in PROBES)}.",
    )
    p.add_argument("--model", required=True, help="reward model directory")
    p.add_argument("--data", help="preference data whose labelled pairs the built-in probes perturb")
    add_data_options(p)
    p.add_argument("--probes", nargs="+", metavar="PROBE",
                   help=f"probe names or families ({', '.join(FAMILIES)}); default: all")
    p.add_argument("--probe-pairs", nargs="+", metavar="FILE",
                   help="your own probe pairs (better vs worse, e.g. EvalBiasBench); one row per subset")
    p.add_argument("--probe-format", default="auto", choices=("auto", *FORMATS),
                   metavar="{auto," + ",".join(FORMATS) + "}", help="format of --probe-pairs (default: auto)")
    p.add_argument("--threshold", type=bounded("--threshold", float, above=0, below=1), default=DEFAULT_THRESHOLD,
                   help=f"win rate above which a probe is gameable (default: {DEFAULT_THRESHOLD})")
    p.add_argument("--limit", type=bounded("--limit", at_least=1), default=200,
                   help="labelled pairs drawn from --data (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pair sample and the perturbations (default: 0)")
    add_batch_size(p)
    p.add_argument("--output", help="JSON file for the results")
    p.add_argument("--report", help="directory for report.md, report.html, plots/win_rates.png and audit.json")
    p.set_defaults(handler=run_audit_command)
    return p


def run_audit_command(args: argparse.Namespace) -> int:
    if not args.data and not args.probe_pairs:
        raise RewardkitError("nothing to audit: pass --data (for the built-in probes) and/or --probe-pairs")
    if args.probes:
        select_probes(args.probes)  # an unknown name fails here, before anything loads
    check_model_source(args.model, "--model", "reward model")
    check_output_file(args.output)
    check_output_dir(args.report, "--report")
    dataset = load_data(args, args.data) if args.data else None
    probe_pairs = [load_data(args, path, format=args.probe_format) for path in args.probe_pairs or []]

    from rewardkit.audit.report import format_table, write_audit_report
    from rewardkit.audit.runner import run_audit
    from rewardkit.model import RewardModel

    model = RewardModel.from_pretrained(args.model, max_length=args.max_length)
    result = run_audit(model, dataset, probes=args.probes if args.data else None, probe_pairs=probe_pairs,
                       threshold=args.threshold, limit=args.limit, seed=args.seed, batch_size=args.batch_size)
    print(format_table(result))
    if args.output:
        Path(args.output).write_text(json.dumps(result.to_dict(), indent=2))
        print(f"results -> {args.output}")
    if args.report:
        files = write_audit_report(result, args.report, model=args.model)
        print(f"report -> {files['markdown']} (and {files['html'].name}, plots/, audit.json)")
    return 0
