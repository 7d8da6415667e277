"""Active selection in the demo world: does ordering the labelling queue by ensemble disagreement reach a given
gold accuracy with fewer comparisons than a random order?

    flock /tmp/rewardkit-heavy.lock python benchmarks/label_active.py     # 8 seeds, ~1 h on a busy 2-core machine

For each seed, a pool of prompts with K = 4 responses sampled from the world's SFT policy is imported into a
labelling project (SQLite) and served by the real app on loopback. Simulated labellers from `rewardkit.world`
(biased, noisy Plackett-Luce rankers calibrated to InstructGPT's 73% agreement) log in and rank through the
HTTP API, a batch per round. After each round the export trains a reward-model ensemble from the SFT checkpoint
(`rewardkit.ensemble`), whose mean reward is scored against the *gold* reward on held-out items. Two queue orders
are compared on the same pool, eval set and labeller noise:

- random: the items in a fixed random order;
- active: the same order for round 0, then after every round `rewardkit.label.active.disagreement_priorities`
  re-orders the open items by the new ensemble's disagreement (highest first).

Each item's label noise is drawn from a stream keyed by the item, so an item gets the same ranking under both
orders (common random numbers: the comparison is paired, only the choice of items differs). Verdicts come with
95% bootstrap intervals over seeds; the results and the command line go to benchmarks/results/label_active.json
and .md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rewardkit.ensemble import EnsembleConfig, train_ensemble  # noqa: E402
from rewardkit.label.active import disagreement_priorities  # noqa: E402
from rewardkit.label.app import create_app  # noqa: E402
from rewardkit.label.db import make_engine, upgrade  # noqa: E402
from rewardkit.label.export import export_records, write_jsonl  # noqa: E402
from rewardkit.label.simulate import audit_submissions, run_annotators  # noqa: E402
from rewardkit.label.store import LabelStore, ProjectSettings, parse_item  # noqa: E402
from rewardkit.serving.asgi import BackgroundAsgiServer  # noqa: E402
from rewardkit.serving.config import HttpSettings  # noqa: E402
from rewardkit.training import TrainConfig  # noqa: E402
from rewardkit.world import (  # noqa: E402
    Labeller,
    SFTConfig,
    World,
    WorldConfig,
    collect_rankings,
    estimate_gold_offset,
    format_prompt,
    save_policy,
    train_sft_policy,
)

RESULTS = REPO / "benchmarks" / "results"
PASSWORD = "simulated-labeller"
STRATEGIES = ("random", "active")


@dataclass
class ActiveConfig:
    seeds: list[int] = field(default_factory=lambda: list(range(8)))
    pool: int = 160  # unlabelled prompts in the pool, K responses each
    k: int = 4
    eval_prompts: int = 200  # held-out (test-split) prompts for gold accuracy
    batch: int = 8  # items labelled per round
    rounds: int = 6
    annotators: int = 2
    members: int = 3  # ensemble size
    rm_epochs: float = 3.0  # passes over the labels so far, but at least rm_min_steps optimizer steps
    rm_min_steps: int = 30
    rm_batch_size: int = 8
    random_init: bool = False  # RMs from a randomly initialised copy of the SFT model (they learn only from labels)
    rm_learning_rate: float = 1e-3
    sft_steps: int = 200
    sft_demonstrations: int = 4000
    targets: list[float] = field(default_factory=list)  # gold accuracies to reach; default: random's mean curve


# ------------------------------------------------------------------------------------------------ pieces
def gold_accuracy(world: World, rewards: list[np.ndarray], groups: list[dict]) -> float:
    """Share of response pairs with distinct gold that the rewards order as gold does (equal rewards: half)."""
    correct = total = 0.0
    for group, r in zip(groups, rewards, strict=True):
        gold = np.asarray(group["gold"])
        i, j = np.triu_indices(len(gold), k=1)
        differs = gold[i] != gold[j]
        agree = np.where(r[i] == r[j], 0.5, ((gold[i] > gold[j]) == (r[i] > r[j])).astype(float))
        correct += float(agree[differs].sum())
        total += float(differs.sum())
    return correct / total


def item_labeller(world: World, seed: int):
    """A rank function for `run_annotators`: a world labeller whose noise stream is keyed by (seed, item text)."""

    def rank(prompt: str, shown: list[tuple[int, str]]) -> list[int]:
        indices = [index for index, _ in shown]
        texts = [text for _, text in sorted(shown)]  # response-index order: the noise must not see display order
        key = int.from_bytes(hashlib.sha256(json.dumps([seed, prompt, texts]).encode()).digest()[:8], "little")
        return [sorted(indices)[i] for i in Labeller(world, seed=key).rank(prompt, texts)]

    return rank


def ensemble_rewards(ensemble, groups: list[dict]) -> list[np.ndarray]:
    prompts = [g["prompt"] for g in groups for _ in g["responses"]]
    responses = [r for g in groups for r in g["responses"]]
    flat = ensemble.score(prompts, responses, batch_size=256, aggregate="mean").numpy()
    out, start = [], 0
    for g in groups:
        out.append(flat[start:start + len(g["responses"])])
        start += len(g["responses"])
    return out


def new_store(path: Path) -> LabelStore:
    from sqlalchemy.orm import sessionmaker

    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    return LabelStore(sessionmaker(engine, expire_on_commit=False))


# ------------------------------------------------------------------------------------------------ one run
def run_strategy(strategy: str, config: ActiveConfig, seed: int, world: World, sft_dir: Path, pool: list[dict],
                 eval_groups: list[dict], eval_path: Path, workdir: Path) -> list[dict]:
    """Label the pool round by round through the app, training an ensemble after each round; the curve."""
    workdir.mkdir(parents=True, exist_ok=True)
    store = new_store(workdir / f"{strategy}.db")
    store.create_project(ProjectSettings("pool", annotations_per_item=1, overlap_fraction=0.0))
    store.import_items("pool", [parse_item(record, f"pool[{n}]") for n, record in enumerate(pool)])
    order = np.random.default_rng([seed, 17]).random(len(pool))  # the same random order for both strategies
    store.set_priorities("pool", {item.id: float(order[n]) for n, item in enumerate(store.items("pool"))})
    names = [f"labeller-{a}" for a in range(config.annotators)]
    for name in names:
        store.add_annotator(name, password=PASSWORD)
    rank = item_labeller(world, seed)
    curve = []
    with BackgroundAsgiServer(create_app(store), HttpSettings(port=0)) as server:
        for round_ in range(config.rounds):
            logs = run_annotators(server.url, "pool", [(name, PASSWORD, rank) for name in names],
                                  max_items=config.batch // config.annotators)
            audit = audit_submissions(store, "pool", logs)
            assert audit["lost"] == audit["duplicated"] == audit["client_errors"] == 0, audit
            data = workdir / f"{strategy}-round{round_}.jsonl"
            records = export_records(store, "pool")
            write_jsonl(records, data)
            started = time.perf_counter()
            steps = max(config.rm_min_steps, int(config.rm_epochs * -(-len(records) // config.rm_batch_size)))
            result = train_ensemble(TrainConfig(
                model=str(sft_dir), data=[str(data)], eval_data=[str(eval_path)], format="ranking",
                output_dir=str(workdir / f"{strategy}-ens{round_}"), max_steps=steps, random_init=config.random_init,
                batch_size=config.rm_batch_size, learning_rate=config.rm_learning_rate, warmup_ratio=0.05,
                seed=1000 * seed + round_, eval_steps=10**9, save_steps=10**9, logging_steps=10**9,
                progress_bar=False), EnsembleConfig(members=config.members))
            ensemble = result.ensemble.eval()
            accuracy = gold_accuracy(world, ensemble_rewards(ensemble, eval_groups), eval_groups)
            curve.append({
                "round": round_, "items": len(records),
                "comparisons": sum(len(r["responses"]) * (len(r["responses"]) - 1) // 2 for r in records),
                "gold_accuracy": accuracy, "train_seconds": round(time.perf_counter() - started, 1),
                "mean_gold_gap": float(np.mean([np.ptp(r["gold"]) for r in records])),
            })
            print(f"  seed {seed} {strategy:>6} round {round_}: {len(records)} items, gold accuracy "
                  f"{accuracy:.3f}", flush=True)
            if strategy == "active" and round_ < config.rounds - 1:
                disagreement_priorities(store, "pool", ensemble, batch_size=256)
    store.sessions.kw["bind"].dispose()
    return curve


def prepare_world(config: ActiveConfig, workdir: Path):
    """One world and SFT policy for all seeds (seeds vary the pool, eval set, label noise and the RMs)."""
    world = World(WorldConfig(seed=0))
    sft = SFTConfig.quick(seed=0, steps=config.sft_steps, num_demonstrations=config.sft_demonstrations)
    policy, tokenizer = train_sft_policy(world, sft, progress=False)
    world.gold_offset = estimate_gold_offset(world, policy, tokenizer)
    sft_dir = workdir / "sft"
    save_policy(policy, tokenizer, world, str(sft_dir))
    return world, policy, tokenizer, sft_dir


def collect(world, policy, tokenizer, n: int, k: int, seed: int, split: str) -> list[dict]:
    records = collect_rankings(world, policy, tokenizer, n, (k, k), Labeller(world, seed=seed), seed=seed,
                               split=split)
    return [{"prompt": format_prompt(r["prompt"]), "responses": r["responses"], "gold": r["gold"],
             "ranking": r["ranking"]} for r in records]


def run_seed(config: ActiveConfig, seed: int, world, policy, tokenizer, sft_dir: Path, workdir: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    pool = [{k: v for k, v in r.items() if k != "ranking"}
            for r in collect(world, policy, tokenizer, config.pool, config.k, 100 + seed, "train")]
    eval_groups = collect(world, policy, tokenizer, config.eval_prompts, config.k, 10_000 + seed, "test")
    eval_path = workdir / "eval.jsonl"
    write_jsonl(eval_groups, eval_path)  # labelled by a world labeller: the RMs' normalization set only
    return {strategy: run_strategy(strategy, config, seed, world, sft_dir, pool, eval_groups, eval_path,
                                   workdir / strategy) for strategy in STRATEGIES}


# ------------------------------------------------------------------------------------------------ summary
def bootstrap_interval(values: np.ndarray, seed: int = 0, draws: int = 10_000) -> list[float]:
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(draws, len(values)))].mean(axis=1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def comparisons_to_reach(curve: list[dict], target: float) -> float | None:
    """Comparisons at which the curve first reaches `target` (linear between rounds); None if it never does."""
    previous = None
    for point in curve:
        if point["gold_accuracy"] >= target:
            if previous is None:
                return float(point["comparisons"])
            fraction = (target - previous["gold_accuracy"]) / (point["gold_accuracy"] - previous["gold_accuracy"])
            return previous["comparisons"] + fraction * (point["comparisons"] - previous["comparisons"])
        previous = point
    return None


def summarize(runs: dict[int, dict], config: ActiveConfig) -> dict:
    seeds = sorted(runs)
    accuracy = {s: np.array([[p["gold_accuracy"] for p in runs[seed][s]] for seed in seeds]) for s in STRATEGIES}
    comparisons = [p["comparisons"] for p in runs[seeds[0]]["random"]]
    difference = accuracy["active"] - accuracy["random"]
    per_round = [{
        "round": r, "comparisons_random": comparisons[r],
        "random": float(accuracy["random"][:, r].mean()), "active": float(accuracy["active"][:, r].mean()),
        "active_minus_random": float(difference[:, r].mean()),
        "difference_ci95": bootstrap_interval(difference[:, r], seed=r),
    } for r in range(config.rounds)]
    targets = config.targets or [round(float(v), 3) for v in accuracy["random"].mean(axis=0)[1:]]
    reach = []
    for target in targets:
        needed = {s: [comparisons_to_reach(runs[seed][s], target) for seed in seeds] for s in STRATEGIES}
        paired = [(a, r) for a, r in zip(needed["active"], needed["random"], strict=True)
                  if a is not None and r is not None]
        ratios = np.array([a / r for a, r in paired]) if paired else np.array([])
        reach.append({
            "target_gold_accuracy": target,
            "seeds_reaching": {s: sum(v is not None for v in needed[s]) for s in STRATEGIES},
            "comparisons": needed,
            "active_over_random": float(ratios.mean()) if len(ratios) else None,
            "ratio_ci95": bootstrap_interval(ratios) if len(ratios) > 1 else None,
        })
    return {"per_round": per_round, "reach": reach}


def verdict(summary: dict) -> str:
    lines = []
    for row in summary["reach"]:
        ci = row["ratio_ci95"]
        if ci is None:
            lines.append(f"target {row['target_gold_accuracy']:.3f}: too few seeds reached it under both orders")
        elif ci[1] < 1:
            lines.append(f"target {row['target_gold_accuracy']:.3f}: active needs {row['active_over_random']:.2f}x "
                         f"the comparisons of random [95% CI {ci[0]:.2f}, {ci[1]:.2f}]: fewer")
        elif ci[0] > 1:
            lines.append(f"target {row['target_gold_accuracy']:.3f}: active needs {row['active_over_random']:.2f}x "
                         f"the comparisons of random [95% CI {ci[0]:.2f}, {ci[1]:.2f}]: more")
        else:
            lines.append(f"target {row['target_gold_accuracy']:.3f}: ratio {row['active_over_random']:.2f} "
                         f"[95% CI {ci[0]:.2f}, {ci[1]:.2f}] includes 1: not resolved")
    return "\n".join(lines)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average": os.getloadavg(), "python": platform.python_version(), "torch": torch.__version__}


def write_results(results: dict, name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
    rows = ["| round | comparisons | random | active | active − random [95% CI over seeds] |", "|---|---|---|---|---|"]
    for r in results["summary"]["per_round"]:
        lo, hi = r["difference_ci95"]
        rows.append(f"| {r['round']} | {r['comparisons_random']} | {r['random']:.3f} | {r['active']:.3f} | "
                    f"{r['active_minus_random']:+.3f} [{lo:+.3f}, {hi:+.3f}] |")
    text = (f"# Active selection vs random order (gold accuracy of the ensemble mean)\n\n"
            f"Command: `{results['command']}`\n\nMachine: {results['machine']}\n\n"
            f"Seeds done: {results['seeds_done']} of {results['config']['seeds']}; pool "
            f"{results['config']['pool']} prompts x K = "
            f"{results['config']['k']}; {results['config']['batch']} items per round; ensemble of "
            f"{results['config']['members']}; {results['seconds']:.0f} s.\n\n" + "\n".join(rows) + "\n\n"
            "Comparisons to reach a gold accuracy (active / random, mean over seeds that reached it under both):\n\n"
            + "\n".join(f"- {line}" for line in results["verdict"].splitlines()) + "\n")
    (RESULTS / f"{name}.md").write_text(text)
    return RESULTS / f"{name}.json"


def run(config: ActiveConfig, workdir: Path, after_seed=None) -> dict:
    """Every seed in turn; `after_seed(results so far)` is called after each one (the script writes the results
    file there, so an interrupted run keeps every finished seed)."""
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster on a shared 2-core machine
    runs: dict[int, dict] = {}
    try:
        world, policy, tokenizer, sft_dir = prepare_world(config, workdir)
        for seed in config.seeds:
            runs[seed] = run_seed(config, seed, world, policy, tokenizer, sft_dir, workdir / f"seed-{seed}")
            results = results_of(runs, config, time.perf_counter() - started)
            if after_seed is not None:
                after_seed(results)
    finally:
        torch.set_num_threads(threads)
    return results


def results_of(runs: dict[int, dict], config: ActiveConfig, seconds: float) -> dict:
    summary = summarize(runs, config)
    return {"config": asdict(config), "seeds_done": sorted(runs), "runs": {str(k): v for k, v in runs.items()},
            "summary": summary, "verdict": verdict(summary), "seconds": seconds, "machine": machine()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = ActiveConfig()
    parser.add_argument("--seeds", type=int, nargs="+", default=defaults.seeds)
    for name in ("pool", "k", "eval_prompts", "batch", "rounds", "annotators", "members", "sft_steps"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--targets", type=float, nargs="*", default=[])
    parser.add_argument("--random-init", action="store_true", help="reward models from random init, not SFT")
    parser.add_argument("--output", default="label_active", help="results file name in benchmarks/results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    config = ActiveConfig(seeds=args.seeds, pool=args.pool, k=args.k, eval_prompts=args.eval_prompts,
                          batch=args.batch, rounds=args.rounds, annotators=args.annotators, members=args.members,
                          sft_steps=args.sft_steps, targets=args.targets, random_init=args.random_init)
    command = "python benchmarks/label_active.py " + " ".join(sys.argv[1:] if argv is None else argv)

    def save(results: dict) -> Path:
        results["command"] = command
        return write_results(results, args.output)

    with tempfile.TemporaryDirectory(prefix="rewardkit-active-") as workdir:
        results = run(config, Path(workdir), after_seed=save)
    path = save(results)
    print(results["verdict"])
    print(f"results: {path} (and .md)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
