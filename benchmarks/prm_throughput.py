"""Process-reward-model training throughput: rewardkit against a plain transformers token-classification loop.

    python benchmarks/prm_throughput.py --threads 2 --epochs 3 --max-length 512 --repeats 2   # ~25 min, 2 idle cores
    python benchmarks/prm_throughput.py --workloads shared --repeats 1

The installed TRL (1.16) has no PRM trainer any more (its experimental PRMTrainer was removed), so the peer is what
its users would otherwise write: `AutoModelForTokenClassification`, one padded forward per batch, the loss at the
token that ends each labelled step. Model: the benchmarks' ~3.3M-parameter Llama (benchmarks/common.py) with a BPE
tokenizer trained on ProcessBench's text, as a token-classification model with rewardkit's step separator.
Workloads (one epoch each, the same solutions per optimizer step for both systems):
  math    ProcessBench MATH, the train split of examples/processbench_prm.py (one solution per problem, mostly):
          labels up to the first wrong step (the steps after it are unlabelled, so neither system computes them)
  shared  8 solutions per MATH problem (Math-Shepherd-like): each keeps the first k steps of the problem's solution
          and continues with steps of other problems (labelled wrong at the first of them); the solutions of a
          problem share its text and their first steps, which rewardkit computes once
Systems:
  peer       plain loop: LlamaForTokenClassification(input_ids, attention_mask).logits, BCE at the labelled step ends
             (mean over the batch's labelled steps), fused AdamW, grad clip 1.0, sdpa attention
  rewardkit  `rewardkit.training.train(TrainConfig(...))` as shipped: packed rows, each problem computed once for
             all its solutions, the last layer only at step ends (share_prefix=True, the default)
Same initial weights (one seed), learning rate, cosine schedule without warmup, batches and steps (--epochs
passes). Timed: the training loop only. Afterwards both models are scored by the same padded forward on held-out
solutions of the workload's kind: `math` on the 20% MATH test split (198 solutions), `shared` on shared-workload
solutions built from those test problems. Step AUROC, with a 95% bootstrap interval over problems and the paired
interval of the difference (rewardkit - peer, the same resampled problems), tells whether speed was bought with
accuracy; one epoch leaves both near chance, which says nothing, hence --epochs. Systems alternate in one process
after a warm-up; figures are medians over --repeats; peak RSS per run.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import (
    REPO,
    ModelSpec,
    build_model_dir,
    environment,
    markdown_table,
    run_alternating,
    summarize,
    write_jsonl,
    write_results,
)
from transformers import set_seed

from rewardkit.data.collate import pad_sequences
from rewardkit.data.step_encoding import encode_step_dataset
from rewardkit.data.step_formats import load_steps
from rewardkit.data.steps import StepDataset, StepGroup, StepSolution, split_steps
from rewardkit.device import resolve_device
from rewardkit.evaluation.process import bootstrap_interval
from rewardkit.model import RewardModel
from rewardkit.model.step_metrics import auroc
from rewardkit.training import TrainConfig, train
from rewardkit.training.sampler import GroupBatchSchedule

PROCESSBENCH = REPO.parent / "shared" / "data" / "processbench"


# -------------------------------------------------------------------------------------------------------- data
def math_splits() -> tuple[StepDataset, StepDataset]:
    """(train, test) of MATH exactly as examples/processbench_prm.py splits it (seed 0; its validation split, 12.5%
    of the rest, is left out as there)."""
    train_and_validation, test = split_steps(load_steps(PROCESSBENCH / "math.json"), 0.2, seed=0)
    return split_steps(train_and_validation, 0.125, seed=0)[0], test


def shared_workload(train: StepDataset, problems: int, per_problem: int, seed: int = 0) -> StepDataset:
    """`per_problem` solutions for each of `problems` problems, branching from the problem's own solution."""
    rng = random.Random(seed)
    pool = [step for group in train.groups for solution in group.solutions for step in solution.steps]
    groups = []
    for group in train.groups[:problems]:
        steps = group.solutions[0].steps
        solutions = []
        for _ in range(per_problem):
            keep = rng.randint(1, len(steps))
            tail = rng.sample(pool, rng.randint(0, 3)) if keep < len(steps) or rng.random() < 0.5 else []
            labels = [1.0] * keep + ([0.0] + [None] * (len(tail) - 1) if tail else [])
            solutions.append(StepSolution(steps[:keep] + tail, labels))
        groups.append(StepGroup(group.prompt, solutions))
    return StepDataset(groups, name="shared")


def records(dataset: StepDataset) -> list[dict]:
    return [{"problem": g.prompt, "steps": s.steps,
             "label": next((i for i, y in enumerate(s.labels) if y == 0.0), -1)}
            for g in dataset.groups for s in g.solutions]  # fmt: skip


# ----------------------------------------------------------------------------------------------------- systems
def run_rewardkit(data: Path, model_dir: Path, args, steps: int, batch_size: int, out: Path) -> dict:
    config = TrainConfig(model=str(model_dir), data=[str(data)], output_dir=str(out), max_length=args.max_length,
                         max_steps=steps, batch_size=batch_size, learning_rate=args.lr, warmup_ratio=0.0,
                         eval_fraction=0.0, save_steps=10**9, logging_steps=10**9, normalize_rewards=False,
                         progress_bar=False, seed=args.seed)
    result = train(config)
    return {"seconds": result.summary["seconds"], "model": result.model}


def run_peer(dataset: StepDataset, model_dir: Path, args, steps: int, batch_size: int) -> dict:
    """The plain loop: padded batches of the same groups, the head's output read at the labelled step ends."""
    set_seed(args.seed)
    model = RewardModel.from_sft(model_dir, max_length=args.max_length, process=True)
    hf_model = model.hf_model  # a plain LlamaForTokenClassification
    encoded = encode_step_dataset(dataset, model.tokenizer, model.max_length, model.step_separator,
                                  through_last_label=True)
    schedule = GroupBatchSchedule(len(encoded), batch_size, 1, args.seed)
    optimizer = torch.optim.AdamW(hf_model.parameters(), lr=args.lr, weight_decay=0.0, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, steps)))))
    hf_model.train()
    started = time.perf_counter()
    for step in range(steps):
        solutions = [s for i in schedule.micro_batches(step)[0] for s in encoded.groups[i].solutions]
        input_ids, attention_mask = pad_sequences([s.sequence.input_ids for s in solutions],
                                                  model.tokenizer.pad_token_id)
        labels = torch.full(input_ids.shape, float("nan"))
        for row, solution in enumerate(solutions):
            for position, label in zip(solution.sequence.reward_positions, solution.labels, strict=True):
                if label is not None:
                    labels[row, position] = label
        logits = hf_model(input_ids=input_ids, attention_mask=attention_mask).logits[..., 0]
        labelled = ~labels.isnan()
        loss = F.binary_cross_entropy_with_logits(logits[labelled], labels[labelled])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf_model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return {"seconds": time.perf_counter() - started, "model": model}


@torch.no_grad()
def held_out_step_scores(model: RewardModel, held_out: StepDataset) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per solution: the rewards and the labels (True: right) of its labelled steps, by one plain padded forward per
    solution (the same code for both systems)."""
    model.eval()
    encoded = encode_step_dataset(held_out, model.tokenizer, model.max_length, model.step_separator)
    scores, correct = [], []
    for group in encoded.groups:
        for solution in group.solutions:
            ids = torch.tensor([solution.sequence.input_ids])
            rewards = model.padded_forward(ids, torch.ones_like(ids), [solution.sequence.reward_positions]).tolist()
            labelled = [(value, label > 0.5) for value, label in zip(rewards, solution.labels, strict=True)
                        if label is not None]  # fmt: skip
            scores.append(np.array([v for v, _ in labelled], dtype=float))
            correct.append(np.array([y for _, y in labelled], dtype=bool))
    return scores, correct


def held_out_aurocs(models: dict[str, RewardModel], held_out: StepDataset) -> dict:
    """Step AUROC of each system with a 95% bootstrap interval over problems, and the paired interval of
    rewardkit - peer (both systems' AUROC on the same resampled problems)."""
    problem = np.array([g for g, group in enumerate(held_out.groups) for _ in group.solutions])
    scored = {which: held_out_step_scores(model, held_out) for which, model in models.items()}

    def step_auroc(which: str, rows: np.ndarray) -> float:
        scores, correct = scored[which]
        return auroc(np.concatenate([scores[r] for r in rows]), np.concatenate([correct[r] for r in rows]))

    def difference(rows: np.ndarray) -> float:
        return step_auroc("rewardkit", rows) - step_auroc("peer", rows)

    everything = np.arange(len(problem))
    systems = {which: {"auroc": step_auroc(which, everything),
                       **bootstrap_interval(problem, functools.partial(step_auroc, which))} for which in scored}
    labels = np.concatenate(scored["peer"][1])
    return {"systems": systems,
            "rewardkit_minus_peer": {"difference": difference(everything), **bootstrap_interval(problem, difference)},
            "solutions": len(problem), "problems": len(held_out), "labelled_steps": len(labels),
            "wrong_steps": int((~labels).sum())}


def interval(entry: dict, key: str, sign: str = "") -> str:
    return f"{entry[key]:{sign}.3f} [{entry['low']:{sign}.3f}, {entry['high']:{sign}.3f}]"


# --------------------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["math", "shared"], choices=["math", "shared"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=1, help="passes over each workload (2+ to leave chance)")
    parser.add_argument("--solutions", type=int, help="use only this many MATH training solutions")
    parser.add_argument("--shared-problems", type=int, default=96, help="problems of the shared workload (96)")
    parser.add_argument("--output", default="prm_throughput")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device("cpu")
    env = environment(device)  # CPU model and flags, threads, load average, commit
    train_set, test_set = math_splits()
    if args.solutions:
        train_set = StepDataset(train_set.groups[: args.solutions], name=train_set.name)
    work = Path(tempfile.mkdtemp(prefix="prm-bench-"))
    corpus = [g.prompt for g in train_set.groups] + [s for g in train_set.groups for x in g.solutions for s in x.steps]
    model_dir = build_model_dir(work / "sft", corpus, ModelSpec(max_positions=args.max_length))
    workloads = {  # (training set, problems per step, held-out set)
        "math": (train_set, 8, test_set),  # 8 solutions (problems) per step
        "shared": (shared_workload(train_set, min(args.shared_problems, len(train_set)), per_problem=8), 2,
                   shared_workload(test_set, min(args.shared_problems, len(test_set)), per_problem=8, seed=1)),
    }
    command = " ".join(["python", "benchmarks/prm_throughput.py", *sys.argv[1:]])
    rows, verdicts, payload = [], [], {"environment": env, "command": command, "workloads": {}}
    for name in args.workloads:
        dataset, batch_size, held_out = workloads[name]
        data = write_jsonl(work / f"{name}.jsonl", records(dataset))
        steps = math.ceil(len(dataset) / batch_size) * args.epochs
        labelled = args.epochs * sum(y is not None for g in dataset.groups for s in g.solutions for y in s.labels)
        print(f"{name}: {dataset.num_solutions} solutions of {len(dataset)} problems, {steps} steps")
        trained: dict[str, RewardModel] = {}

        def system(which: str, warmup: bool, dataset=dataset, data=data, batch_size=batch_size, steps=steps,
                   name=name, trained=trained):
            run_steps = 1 if warmup else steps
            if which == "peer":
                result = run_peer(dataset, model_dir, args, run_steps, batch_size)
            else:
                result = run_rewardkit(data, model_dir, args, run_steps, batch_size, work / f"rk-{name}")
            if not warmup:
                trained[which] = result.pop("model")
            return {"seconds": result["seconds"]}

        runs = run_alternating({which: functools.partial(system, which) for which in ("peer", "rewardkit")},
                               args.repeats, device)
        summary = {which: summarize(r, ["seconds", "peak_rss_mib"]) for which, r in runs.items()}
        aurocs = held_out_aurocs(trained, held_out)
        peer_s, rk_s = summary["peer"]["seconds"], summary["rewardkit"]["seconds"]
        payload["workloads"][name] = {"solutions": dataset.num_solutions, "problems": len(dataset),
                                      "epochs": args.epochs, "labelled_steps_trained": labelled,
                                      "optimizer_steps": steps, "summary": summary, "held_out_step_auroc": aurocs,
                                      "ratio": peer_s / rk_s}
        for which in ("peer", "rewardkit"):
            seconds = summary[which]["seconds"]
            rows.append({"workload": name, "system": which, "seconds": seconds,
                         "steps_per_s": labelled / seconds, "ratio": peer_s / seconds,
                         "peak_rss_mib": summary[which]["peak_rss_mib"],
                         "auroc": interval(aurocs["systems"][which], "auroc")})
        gap = aurocs["rewardkit_minus_peer"]
        verdict = ("equal within the interval" if gap["low"] <= 0 <= gap["high"]
                   else "rewardkit higher" if gap["low"] > 0 else "rewardkit lower")
        verdicts.append(f"- {name}: held-out step AUROC rewardkit - peer = {interval(gap, 'difference', '+')} on "
                        f"{aurocs['solutions']} solutions of {aurocs['problems']} problems ({aurocs['labelled_steps']} "
                        f"labelled steps, {aurocs['wrong_steps']} wrong): {verdict}")
    env["load_average_at_end"] = os.getloadavg()[0]
    table = markdown_table(rows, [("workload", "workload"), ("system", "system"), ("seconds", "median s/run"),
                                  ("steps_per_s", "labelled steps/s"), ("ratio", "speed vs peer"),
                                  ("peak_rss_mib", "peak RSS MiB"), ("auroc", "held-out step AUROC [95% CI]")])
    markdown = (f"# PRM training throughput\n\n`{payload['command']}`\n\nCPU: {env['cpu_model']}, "
                f"{env['torch_threads']} torch threads, load average {env['load_average_at_start']:.2f} at start, "
                f"{env['load_average_at_end']:.2f} at end; medians of {args.repeats} repeats, {args.epochs} epoch(s) "
                f"per run.\n\n{table}\n\n"
                + "\n".join(verdicts) + "\n")
    write_results(args.output, payload, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
