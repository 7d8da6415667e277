"""`rewardkit experiment prm`: options, the run, and its report (Markdown, HTML, PNG, results.json)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rewardkit.experiments import Experiment


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="experiment-prm", help="directory for the report and artifacts")
    p.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes on 2 cores)")
    p.add_argument("--seeds", type=int, help="labelling + training repeats for the intervals (3)")
    p.add_argument("--budget", type=float, help="label units per arm: steps read, or outcome labels (1200)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    from rewardkit.errors import RewardkitError
    from rewardkit.experiments.prm import PRMExperimentConfig, run_prm_experiment
    from rewardkit.progress import quiet_libraries

    config = PRMExperimentConfig.quick() if args.quick else PRMExperimentConfig()
    if args.seeds is not None:
        if args.seeds < 1:
            raise RewardkitError(f"--seeds must be at least 1, got {args.seeds}")
        config.seeds = args.seeds
    if args.budget is not None:
        if args.budget < 10:
            raise RewardkitError(f"--budget must be at least 10 label units, got {args.budget}")
        config.budget = args.budget
    command = " ".join(["rewardkit experiment prm", *(["--quick"] if args.quick else []),
                         *([f"--seeds {args.seeds}"] if args.seeds is not None else []),
                         *([f"--budget {args.budget:g}"] if args.budget is not None else []),
                         f"--output {args.output}"])
    with quiet_libraries():  # no "Writing model shards" bar at every RM save
        results = run_prm_experiment(config, args.output, progress=args.progress, command=command)
    files = write_report(results, args.output)
    for line in summary_lines(results):
        print(f"- {line}")
    print(f"report: {files['markdown']} (and report.html, plots/, results.json) in {results['seconds']:.0f} s")
    return 0


def _ci(entry: dict) -> str:
    return f"{entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def summary_lines(results: dict) -> list[str]:
    from rewardkit.experiments.prm import verdict

    s = results["summary"]
    return [
        f"SFT policy: {results['policy']['gold_final_accuracy']:.1%} of its test solutions end in the right answer",
        f"solution AUROC for a right answer: PRM min {_ci(s['solution_auroc']['PRM min'])}, ORM "
        f"{_ci(s['solution_auroc']['ORM'])}: {verdict(s, 'PRM min', 'ORM')}",
        "best-of-n gold accuracy at n = {n}: PRM min {p}, ORM {o}".format(
            n=s["best_of_n"]["ORM"][-1]["n"], p=_ci(s["best_of_n"]["PRM min"][-1]), o=_ci(s["best_of_n"]["ORM"][-1])),
    ]


def write_report(results: dict, output_dir: str | Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rewardkit.experiments.prm import SCORERS, paired_verdict, verdict
    from rewardkit.reporting import Document

    output = Path(output_dir)
    (output / "plots").mkdir(parents=True, exist_ok=True)
    s, config = results["summary"], results["config"]
    document = Document("PRM vs ORM at equal labelling budget")
    document.paragraph(
        f"Step world (running sums), SFT policy right on {results['policy']['gold_final_accuracy']:.1%} of test "
        f"solutions. Budget {config['budget']:g} label units per arm; {config['seeds']} seeds (labelling draws, "
        "solution order, RM training); the SFT policy and the test samples are fixed. Intervals: 95% t-intervals "
        "over seeds. A verdict is stated only where the 95% t-interval of the paired difference over seeds (both "
        "scorers measured on the same seed's labels and samples) excludes 0.")
    labels = s["labels"]
    document.table(["arm", "labelled solutions", "human label units", "policy samples"], [
        ["PRM (human, up to the first error)", _ci(labels["prm_solutions"]), _ci(labels["prm_steps_read"]), 0],
        ["ORM (outcome)", _ci(labels["orm_solutions"]), _ci(labels["orm_solutions"]), 0],
        ["PRM (Monte-Carlo, same solutions as PRM)", _ci(labels["mc_solutions"]), 0,
         _ci(labels["mc_policy_samples"])],
    ])
    best_n = s["best_of_n"]["ORM"][-1]["n"]
    document.table(["scorer", "solution AUROC (right answer)", f"gold accuracy, best of {best_n}"],
                   [[name, _ci(s["solution_auroc"][name]), _ci(s["best_of_n"][name][-1])] for name in SCORERS])
    document.table(["reward model", "step AUROC (on-track steps)"],
                   [[arm, _ci(entry)] for arm, entry in s["step_auroc"].items()])
    best = {name: s["best_of_n"][name][-1] for name in SCORERS}
    prms = ("PRM min", "PRM (Monte-Carlo) min")
    document.bullets([f"solution AUROC: {verdict(s, prm, 'ORM')}" for prm in prms]
                     + [f"gold accuracy, best of {best_n}: {paired_verdict(prm, best[prm], 'ORM', best['ORM'])}"
                        for prm in prms])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in SCORERS:
        curve = s["best_of_n"][name]
        ns = [row["n"] for row in curve]
        ax.plot(ns, [row["mean"] for row in curve], "o-", label=name, markersize=3)
        ax.fill_between(ns, [row["low"] for row in curve], [row["high"] for row in curve], alpha=0.15)
    ax.set(xscale="log", xlabel="n (samples per prompt)", ylabel="gold accuracy of the selected solution",
           title="Best-of-n selected by each reward model")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output / "plots" / "best_of_n.png", dpi=110)
    plt.close(fig)
    document.image("plots/best_of_n.png", "Best-of-n gold accuracy (mean over seeds, 95% band)")
    if s.get("ppo"):
        _ppo_section(document, s["ppo"], results["config"]["ppo_missing_eos_penalty"], output, plt)
    files = {"markdown": output / "report.md", "html": output / "report.html"}
    files["markdown"].write_text(document.to_markdown())
    files["html"].write_text(document.to_html())
    return files


def _ppo_section(document, ppo: dict, missing_eos_penalty: float | None, output: Path, plt) -> None:
    rows = []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, curve in ppo.items():
        kl, gold = [row["kl"]["mean"] for row in curve], [row["gold"]["mean"] for row in curve]
        ax.plot(kl, gold, "o-", markersize=3, label=f"PPO against {name}")
        start, end = curve[0], curve[-1]
        best = max(curve, key=lambda row: row["gold"]["mean"])
        rows.append([name, _ci(start["gold"]), _ci(best["gold"]), _ci(end["gold"]), _ci(end["kl"]),
                     _ci(end["proxy"]), _ci(end["unfinished"])])
    ax.set(xlabel="KL to the SFT policy (nats, per rollout)", ylabel="gold: share of right answers",
           title="PPO against each reward model (no KL penalty)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output / "plots" / "ppo.png", dpi=110)
    plt.close(fig)
    penalty = "no penalty" if missing_eos_penalty is None else f"{missing_eos_penalty:g} subtracted from the score"
    document.paragraph(f"PPO's reward: the RM's solution score; a solution cut at max_new_tokens ({penalty}). "
                       "'unfinished': the share of rollouts without an answer.")
    document.table(["PPO reward", "gold at start", "best gold", "gold at end", "KL at end", "RM reward at end",
                    "unfinished at end"], rows)
    document.image("plots/ppo.png", "Gold accuracy of PPO rollouts against KL (mean over seeds)")


EXPERIMENT = Experiment(
    help="PRM vs ORM at equal labelling budget in the step world (with intervals over seeds)",
    description="Train process and outcome reward models on labels of the same cost from a policy that slips, "
    "and compare them against gold: solution AUROC, step AUROC and best-of-n accuracy, over seeds.",
    add_arguments=add_arguments,
    run=run,
)
