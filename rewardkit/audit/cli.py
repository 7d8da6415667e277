"""`rewardkit audit`: perturbation probes that ask whether a reward model can be gamed.

Registered on the main CLI by `add_audit_parser(subparsers)`; the handler is `run_audit_command`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rewardkit.audit.probes import DEFAULT_THRESHOLD, FAMILIES, PROBES
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
    p.add_argument("--format", default="auto", help="format of --data (auto)")
    p.add_argument("--skip-bad-records", action="store_true", help="skip invalid records (counted) instead of stopping")
    p.add_argument("--probes", nargs="+", metavar="PROBE",
                   help=f"probe names or families ({', '.join(FAMILIES)}); default: all")
    p.add_argument("--probe-pairs", nargs="+", metavar="FILE",
                   help="your own probe pairs (better vs worse, e.g. EvalBiasBench); one row per subset")
    p.add_argument("--probe-format", default="auto", help="format of --probe-pairs (auto; e.g. evalbiasbench)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"win rate above which a probe is gameable ({DEFAULT_THRESHOLD})")
    p.add_argument("--limit", type=int, default=200, help="labelled pairs drawn from --data (200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pair sample and the perturbations (0)")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per forward pass (32)")
    p.add_argument("--max-length", type=int, help="override the checkpoint's max tokens per prompt+response")
    p.add_argument("--output", help="JSON file for the results")
    p.add_argument("--report", help="directory for report.md, report.html, plots/win_rates.png and audit.json")
    p.set_defaults(handler=run_audit_command)
    return p


def run_audit_command(args: argparse.Namespace) -> int:
    from rewardkit.audit.report import format_table, write_audit_report
    from rewardkit.audit.runner import run_audit
    from rewardkit.data import FORMATS, load_preferences
    from rewardkit.model import RewardModel

    if not args.data and not args.probe_pairs:
        raise RewardkitError("nothing to audit: pass --data (for the built-in probes) and/or --probe-pairs")
    for name in ("format", "probe_format"):
        if getattr(args, name) != "auto" and getattr(args, name) not in FORMATS:
            raise RewardkitError(f"unknown format {getattr(args, name)!r}; expected 'auto' or one of: "
                                 f"{', '.join(FORMATS)}")
    for name in ("limit", "batch_size"):
        if getattr(args, name) < 1:
            raise RewardkitError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")

    model = RewardModel.from_pretrained(args.model, max_length=args.max_length)
    on_error = "skip" if args.skip_bad_records else "raise"
    dataset = load_preferences(args.data, format=args.format, on_error=on_error) if args.data else None
    probe_pairs = [load_preferences(p, format=args.probe_format, on_error=on_error) for p in args.probe_pairs or []]
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
