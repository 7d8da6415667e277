"""`rewardkit demo --mitigations`: do reward-model ensembles and DPO help against over-optimization here?

Runs on one finished seed of the demo (seed-N/: sft-policy/, data/, reward-model/, results.json,
sft-reference.json) and compares, in the same world and with the same settings, the demo's single reward model
against:

    1. ensemble   N reward models from the SFT policy on the same rankings (bootstrap resamples, seeds i)
    2. accuracy   every member, every aggregation and the DPO policy's implicit reward, against held-out labels
                  and against gold
    3. best-of-n  one set of samples, re-ranked by the single RM, by each member, and by each aggregation
                  (mean, worst-case min, uncertainty-weighted mean - lambda * std)          (Coste et al. 2023)
    4. PPO        runs against the single RM and ensemble aggregations with the demo's settings
    5. DPO        a policy trained on the same comparisons from the SFT policy

Every optimized policy is measured as the demo measures its own: fresh samples for the demo's held-out prompts at
fixed steps, centred on the SFT policy's samples for the same prompts, with bootstrap intervals over prompts (one
seed: evaluation noise only). Nothing is tuned to make a method win: what the numbers show is what the report says.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt  # the Agg backend is chosen by rewardkit.demo.plots, imported with the package
import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardkit.data import Comparison, PreferenceDataset, PreferenceGroup, load_preferences
from rewardkit.data.collate import encode_dataset
from rewardkit.demo.config import DemoConfig
from rewardkit.demo.pipeline import summarize, to_json
from rewardkit.demo.plots import number, series
from rewardkit.demo.ppo_runs import DEFAULT_RM, run_ppo
from rewardkit.dpo import DPOConfig, DPOScorer, train_dpo
from rewardkit.ensemble import (
    EnsembleConfig,
    RewardEnsemble,
    aggregate,
    disagreement,
    evaluate_ensemble,
    mean_disagreement,
    train_ensemble,
)
from rewardkit.evaluation.pairwise import evaluate
from rewardkit.model import RewardModel
from rewardkit.progress import Console
from rewardkit.reporting import Document
from rewardkit.rl import BestOfNConfig
from rewardkit.rl.best_of_n import sample_and_score
from rewardkit.rl.curves import OptimizationCurve
from rewardkit.rl.evaluation import HeldOutEvaluation
from rewardkit.rl.statistics import Estimate
from rewardkit.training import TrainConfig
from rewardkit.training.sampler import GroupBatchSchedule
from rewardkit.world import World, format_prompt, load_world

PLOT = "plots/mitigations.png"
_COLOURS = {"single RM": "black", "ensemble mean": "tab:blue", "ensemble min": "tab:red", "ensemble uwo": "tab:green"}


@dataclass
class MitigationsConfig:
    # ensemble (RM training settings come from the demo's config)
    members: int = 4
    bootstrap: bool = True
    uwo_lambda: float = 0.5  # uwo = mean - lambda * std of the members' normalized rewards
    bon_extra_lambdas: tuple[float, ...] = (2.0,)  # re-ranking is free: uwo with these lambdas too (best-of-n only)
    # best-of-n: one sample set, re-ranked by every scorer
    bon_prompts: int = 32
    bon_samples: int = 256
    bon_n_max: int = 128
    # PPO with the demo's settings against the single RM and ensemble aggregations, evaluated like the demo's runs
    ppo_aggregations: tuple[str, ...] = ("mean", "uwo")
    ppo_steps: int = 30
    ppo_beta: float = 0.0  # no KL penalty: where over-optimization shows fastest
    # DPO from the SFT policy on the same rankings
    dpo_beta: float = 0.1
    dpo_epochs: float = 1.0
    dpo_batch_size: int = 16
    dpo_learning_rate: float = 5e-4
    dpo_eval_points: int = 5  # geometrically spaced steps: DPO moves fastest at the start

    @classmethod
    def quick(cls) -> MitigationsConfig:
        """About a minute on 2 CPU cores (on a `rewardkit demo --quick` directory)."""
        return cls(members=3, bon_prompts=16, bon_samples=128, bon_n_max=64, ppo_aggregations=("uwo",),
                   ppo_steps=20, dpo_eval_points=4)

    def to_dict(self) -> dict:
        return asdict(self)


def run_mitigations(demo_dir: str | Path, config: MitigationsConfig | None = None,
                    console: Console | None = None) -> dict:
    """Run every comparison on the demo seed in `demo_dir`; write mitigations.json, mitigations.md and the plot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: see run_demo
    try:
        return _run(Path(demo_dir), config or MitigationsConfig(), console or Console())
    finally:
        torch.set_num_threads(threads)


def _run(demo_dir: Path, config: MitigationsConfig, console: Console) -> dict:
    demo = DemoConfig.from_dict(json.loads((demo_dir / "results.json").read_text())["config"])
    sft_dir = demo_dir / "sft-policy"
    world = load_world(str(sft_dir))
    tokenizer = AutoTokenizer.from_pretrained(sft_dir)
    sft = AutoModelForCausalLM.from_pretrained(sft_dir).eval().requires_grad_(False)
    single = RewardModel.from_pretrained(demo_dir / "reward-model").eval()
    reference = json.loads((demo_dir / "sft-reference.json").read_text())
    held_out = {"prompts": reference["prompts"],
                "means": {name: np.array(values) for name, values in reference["means"].items()}}
    console = Console(console.enabled, console.stream, prefix=f"[mitigations, seed {demo.seed}] ")
    results: dict = {"config": config.to_dict(), "seed": demo.seed}

    with console.stage("Ensemble", f"{config.members} reward models"):
        ensemble = train_demo_ensemble(demo_dir, demo, config, console)
        val = load_preferences(demo_dir / "data" / "val.jsonl", format="ranking")
        results["ensemble"] = {
            "members": ensemble.manifest["members"],
            "val_disagreement": mean_disagreement(ensemble, encode_dataset(val, ensemble.tokenizer,
                                                                           ensemble.max_length), 256),
        }
    with console.stage("DPO", f"β = {config.dpo_beta:g} from SFT on the same rankings"):
        results["dpo"], dpo_policy = run_dpo(world, sft, tokenizer, demo_dir, demo, config, single, held_out,
                                             console)
    with console.stage("Accuracy", "every scorer against held-out labels and gold"):
        dpo_scorers = {f"DPO implicit ({mode})": DPOScorer(dpo_policy, tokenizer, sft, config.dpo_beta, mode)
                       for mode in ("reference", "sum", "mean")}
        results["accuracy"] = accuracy_table(world, demo_dir, single, ensemble, dpo_scorers, config.uwo_lambda)
    with console.stage("Best-of-n", "one sample set re-ranked by every scorer"):
        results["best_of_n"] = run_ensemble_best_of_n(world, sft, tokenizer, single, ensemble, config, demo, console)
    with console.stage("PPO", f"β = {config.ppo_beta:g}, {config.ppo_steps} steps against the single RM and "
                              f"{len(config.ppo_aggregations)} aggregations"):
        scorers = {"single RM": single.score, **{f"ensemble {agg}": _ensemble_fn(ensemble, agg, config.uwo_lambda)
                                                 for agg in config.ppo_aggregations}}
        results["ppo"] = run_ensemble_ppo(world, sft, tokenizer, scorers, ensemble, held_out, demo, config, console)
    results["summary"] = summary_lines(results)
    (demo_dir / "plots").mkdir(parents=True, exist_ok=True)
    plot_mitigations(results, demo_dir / PLOT)
    document = Document("rewardkit demo: mitigations")
    document.blocks.extend(mitigation_blocks(results, PLOT))
    (demo_dir / "mitigations.md").write_text(document.to_markdown())
    (demo_dir / "mitigations.json").write_text(to_json(results))
    (demo_dir / "mitigations-timings.json").write_text(json.dumps(console.seconds, indent=2))
    return json.loads(to_json(results))


# ------------------------------------------------------------------------------------------------ stages
def train_demo_ensemble(demo_dir: Path, demo: DemoConfig, config: MitigationsConfig,
                        console: Console) -> RewardEnsemble:
    """Members trained exactly like the demo's reward model (same data, steps, learning rate), seeds seed + i."""
    data_dir = demo_dir / "data"
    num_train = sum(1 for line in (data_dir / "train.jsonl").read_text().splitlines() if line.strip())
    steps = max(20, int(demo.rm_epochs * math.ceil(num_train / demo.rm_batch_size)))
    train_config = TrainConfig(
        model=str(demo_dir / "sft-policy"), data=[str(data_dir / "train.jsonl")],
        eval_data=[str(data_dir / "val.jsonl")], format="ranking", output_dir=str(demo_dir / "ensemble"),
        batch_size=demo.rm_batch_size, learning_rate=demo.rm_learning_rate, warmup_ratio=0.05,
        seed=demo.stage_seed("ensemble"), max_steps=steps, eval_steps=10**9, save_steps=10**9, logging_steps=10,
        progress_bar=console.enabled,
    )
    result = train_ensemble(train_config, EnsembleConfig(config.members, config.bootstrap, "uwo", config.uwo_lambda))
    return result.ensemble


def gold_labelled(world: World, dataset: PreferenceDataset) -> PreferenceDataset:
    """The same responses with every pair the gold reward separates labelled by gold (ties in gold left out)."""
    groups = []
    for group in dataset.groups:
        gold = world.gold_reward([group.prompt] * len(group.responses), group.responses).tolist()
        comparisons = [Comparison(better=i, worse=j) if gold[i] > gold[j] else Comparison(better=j, worse=i)
                       for i in range(len(gold)) for j in range(i + 1, len(gold)) if gold[i] != gold[j]]
        if comparisons:
            groups.append(PreferenceGroup(group.prompt, group.responses, comparisons, source=group.source))
    return PreferenceDataset(groups, name=f"{dataset.name} (gold labels)")


def accuracy_table(world: World, output_dir: Path, single: RewardModel, ensemble: RewardEnsemble,
                   dpo_scorers: dict[str, DPOScorer], lam: float) -> dict[str, dict]:
    """Pairwise accuracy of every scorer against the held-out labels and against gold (same responses)."""
    labelled = load_preferences(output_dir / "data" / "val.jsonl", format="ranking")
    table: dict[str, dict] = {}
    for target, dataset in (("labels", labelled), ("gold", gold_labelled(world, labelled))):
        encoded = encode_dataset(dataset, single.tokenizer, single.max_length)
        rows = {"single RM": evaluate(single, encoded, batch_size=256)}
        for name, metrics in evaluate_ensemble(ensemble, encoded, batch_size=256, lam=lam).items():
            rows[name.replace("member-", "member ") if name.startswith("member") else f"ensemble {name}"] = metrics
        rows |= {name: scorer.evaluate(dataset, batch_size=256) for name, scorer in dpo_scorers.items()}
        for name, metrics in rows.items():
            table.setdefault(name, {})[f"accuracy_vs_{target}"] = metrics.accuracy
    return table


def run_ensemble_best_of_n(world: World, sft, tokenizer, single: RewardModel, ensemble: RewardEnsemble,
                           config: MitigationsConfig, demo: DemoConfig, console: Console) -> dict:
    """Sample once; the best-of-n curve of each scorer re-ranks the same samples (paired comparison)."""
    prompts = [format_prompt(p) for p in world.prompts(config.bon_prompts, split="test",
                                                       seed=demo.stage_seed("mitigations-prompts"))]
    bon = BestOfNConfig(n_max=config.bon_n_max, num_samples=config.bon_samples, max_new_tokens=demo.max_new_tokens,
                        sample_batch_size=1024, score_batch_size=4096, seed=demo.stage_seed("mitigations-best-of-n"),
                        progress=console.enabled)
    responses, scores = sample_and_score(sft, tokenizer, prompts, {"gold": world.gold_reward}, config.bon_samples, bon)
    shape = scores["gold"].shape
    flat_prompts = [p for p, texts in zip(prompts, responses, strict=True) for _ in texts]
    flat_texts = [t for texts in responses for t in texts]
    members = ensemble.score(flat_prompts, flat_texts, batch_size=4096, return_details=True).member_rewards
    members = members.reshape(len(ensemble.members), *shape)
    measures = world.measure(flat_prompts, flat_texts)
    observed = {"gold": scores["gold"], "disagreement": disagreement(members).numpy(),
                **{name: measures[name].reshape(shape) for name in ("length", "format_rate")}}
    proxies = {"single RM": single.score(flat_prompts, flat_texts, batch_size=4096).numpy().reshape(shape)}
    proxies |= {f"ensemble {agg}": aggregate(members, agg, config.uwo_lambda).numpy() for agg in ("mean", "min", "uwo")}
    proxies |= {f"ensemble uwo λ={lam:g}": aggregate(members, "uwo", lam).numpy() for lam in config.bon_extra_lambdas}
    proxies |= {f"member {m}": members[m].numpy() for m in range(len(ensemble.members))}
    curves = {}
    for name, proxy in proxies.items():
        curves[name] = summarize(OptimizationCurve.from_best_of_n(proxy, observed, config.bon_n_max), demo)
        # disagreement is centred like every metric; keep SFT's own level to read it in absolute terms
        curves[name]["disagreement_at_sft"] = float(observed["disagreement"].mean())
    return curves


def run_ensemble_ppo(world: World, sft, tokenizer, scorers: dict, ensemble: RewardEnsemble, held_out: dict,
                     demo: DemoConfig, config: MitigationsConfig, console: Console) -> dict:
    """PPO with the demo's settings (batch, learning rate, seed) against the single RM and each aggregation,
    evaluated like the demo's runs; the ensemble's disagreement is measured on the same held-out samples."""
    extra = {"disagreement": lambda p, r: ensemble.score(p, r, batch_size=256, return_details=True).std}
    runs = {}
    for name, scorer in scorers.items():
        curve = run_ppo(world, sft, tokenizer, scorer, held_out["means"], held_out["prompts"], demo, config.ppo_beta,
                        config.ppo_steps, f"PPO β={config.ppo_beta:g} against the {name}, seed {demo.seed}", console,
                        metrics=extra)
        runs[f"PPO β={config.ppo_beta:g}, {name}"] = summarize(curve, demo)
    return runs


def run_dpo(world: World, sft, tokenizer, demo_dir: Path, demo: DemoConfig, config: MitigationsConfig,
            single: RewardModel, held_out: dict, console: Console) -> tuple[dict, torch.nn.Module]:
    """DPO from the SFT policy on the demo's training rankings, evaluated at geometrically spaced steps on fresh
    samples for the demo's held-out prompts (gold, the single RM's reward, KL to SFT, what the responses are)."""
    dataset = load_preferences(demo_dir / "data" / "train.jsonl", format="ranking")
    seed = demo.stage_seed("dpo")
    dpo_config = DPOConfig(beta=config.dpo_beta, epochs=config.dpo_epochs, batch_size=config.dpo_batch_size,
                           learning_rate=config.dpo_learning_rate, seed=seed, progress=console.enabled)
    total = GroupBatchSchedule(len(dataset), config.dpo_batch_size, 1, seed).total_steps(config.dpo_epochs, None)
    eval_steps = sorted({max(1, round(total ** (k / config.dpo_eval_points)))
                         for k in range(1, config.dpo_eval_points + 1)})
    evaluation = HeldOutEvaluation(sft, tokenizer, held_out["prompts"], {"gold": world.gold_reward,
                                                                        "proxy": single.score},
                                   describe=world.measure, samples_per_prompt=demo.ppo_eval_samples,
                                   max_new_tokens=demo.max_new_tokens, seed=demo.stage_seed("evaluation"))
    evaluation.evaluate(sft, 0)
    policy = copy.deepcopy(sft).requires_grad_(True)
    result = train_dpo(policy, sft, tokenizer, dataset, dpo_config, callback=evaluation.callback(eval_steps))
    policy.eval()
    last = result.log[-1]
    reference = {"proxy": held_out["means"][DEFAULT_RM], **held_out["means"]}
    return {"beta": config.dpo_beta, "steps": len(result.log), **summarize(evaluation.curve(reference), demo),
            "final_train_accuracy": last["accuracy"], "final_train_loss": last["loss"]}, policy


def _ensemble_fn(ensemble: RewardEnsemble, method: str, lam: float):
    return lambda prompts, responses: ensemble.score(prompts, responses, batch_size=256, aggregate=method, lam=lam)


# ------------------------------------------------------------------------------------------------ report
def _est(value: dict) -> Estimate:
    return Estimate(number(value["value"]), number(value["low"]), number(value["high"]))


def summary_lines(results: dict) -> list[str]:
    """What happened, every number from the results; no claim that the numbers do not make."""
    bon, acc = results["best_of_n"], results["accuracy"]
    single_bon = bon["single RM"]
    n_max = single_bon["end"]["n"]
    members = [name for name in bon if name.startswith("member")]
    member_end = [number(bon[m]["end"]["gold"]) for m in members]
    member_acc = [acc[m]["accuracy_vs_gold"] for m in acc if m.startswith("member")]
    lines = [
        f"Accuracy against gold on held-out rankings: single RM {acc['single RM']['accuracy_vs_gold']:.1%}, "
        + ", ".join(f"{name} {acc[name]['accuracy_vs_gold']:.1%}" for name in acc if name.startswith("ensemble"))
        + f" (members {min(member_acc):.1%}–{max(member_acc):.1%}); DPO's implicit reward "
        f"{acc['DPO implicit (reference)']['accuracy_vs_gold']:.1%}.",
        f"Best-of-{n_max} gold (SFT = 0): single RM {_est(single_bon['end']['gold']).format()}; "
        + "; ".join(f"{name} {_est(bon[name]['end']['gold']).format()}" for name in bon if name.startswith("ensemble"))
        + f"; single members {min(member_end):+.2f} to {max(member_end):+.2f}. Member disagreement (std) on the "
        f"chosen responses: {single_bon['disagreement_at_sft']:.2f} at n = 1, "
        f"{single_bon['disagreement_at_sft'] + number(bon['ensemble mean']['end']['disagreement']):.2f} at "
        f"n = {n_max} (re-ranked by the ensemble mean).",
    ]
    for name, run in results["ppo"].items():
        end = run["end"]
        lines.append(f"{name}: gold {_est(end['gold']).format()} after {end['step']} steps at KL "
                     f"{end['sqrt_kl'] ** 2:.1f} nats (length {number(end['length']):+.1f} words from SFT); "
                     f"ensemble disagreement {number(run['points'][0]['disagreement']):.2f} → "
                     f"{number(end['disagreement']):.2f}.")
    dpo = results["dpo"]
    lines.append(f"DPO β={dpo['beta']:g} from SFT on the same rankings ({dpo['steps']} steps): (KL, gold) = "
                 + ", ".join(f"({p['kl']:.1f}, {number(p['gold']):+.2f})" for p in dpo["points"][1:])
                 + f"; at the end {_est(dpo['end']['gold']).format()} gold, length {number(dpo['end']['length']):+.1f}"
                 " words from SFT.")
    return lines


def mitigation_blocks(results: dict, plot: str = PLOT) -> list[tuple[str, object]]:
    """The report section as `Document` blocks: `document.blocks.extend(mitigation_blocks(results))`."""
    doc = Document("")
    config = results["config"]
    doc.heading("Mitigations: reward-model ensembles and DPO")
    doc.paragraph(
        f"An ensemble of {config['members']} reward models (trained like the demo's, seeds differ"
        f"{', each on a bootstrap resample of the rankings' if config['bootstrap'] else ''}) scored with the "
        f"mean, the worst case (min) and uncertainty-weighted optimization (mean − {config['uwo_lambda']:g} × std "
        "over members), next to the demo's single reward model, and a policy trained with DPO on the same "
        "rankings. Coste et al. (2023) found ensembles reduce over-optimization; Eisenstein et al. (2023) that "
        "they mitigate but do not eliminate it, because errors all members share survive aggregation (here every "
        "member learns from the same biased labellers). Best-of-n re-ranks one set of samples (a paired "
        "comparison); PPO and DPO are measured on fresh samples for the demo's held-out prompts. One seed "
        f"(seed {results['seed']}): the intervals cover evaluation noise, not the variation between training runs."
    )
    doc.bullets(results["summary"])
    doc.table(["scorer", "accuracy vs labels", "accuracy vs gold"],
              [[name, row["accuracy_vs_labels"], row["accuracy_vs_gold"]] for name, row in results["accuracy"].items()])
    n_max = results["best_of_n"]["single RM"]["end"]["n"]
    doc.table(["best-of-n scorer", "gold at peak", "at √KL", f"gold at n={n_max}", f"length at n={n_max}",
               "drop after peak"],
              [[name, _est(b["peak"]["gold"]).format(), number(b["peak"]["sqrt_kl"]), _est(b["end"]["gold"]).format(),
                number(b["end"]["length"]), _est(b["drop_after_peak"]).format()]
               for name, b in results["best_of_n"].items()])
    doc.table(["run", "gold at end", "KL at end", "length at end", "drop after peak", "disagreement start",
               "disagreement end"],
              [[name, _est(r["end"]["gold"]).format(), r["end"]["sqrt_kl"] ** 2, number(r["end"]["length"]),
                _est(r["drop_after_peak"]).format(), number(r["points"][0]["disagreement"]),
                number(r["end"]["disagreement"])]
               for name, r in results["ppo"].items()])
    doc.table(["DPO step", "KL (held-out samples)", "gold", "single-RM reward", "length", "format rate"],
              [[p["step"], p["kl"], _est(p["gold"]).format(), _est(p["proxy"]).format(), number(p["length"]),
                number(p["format_rate"])] for p in results["dpo"]["points"]])
    doc.image(plot, "Gold reward against √KL: best-of-n re-ranked by each scorer (left); PPO against the single RM "
                    "and ensemble aggregations, and DPO (right)")
    return doc.blocks


def plot_mitigations(results: dict, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    for name, run in results["best_of_n"].items():
        d = [p["sqrt_kl"] for p in run["points"]]
        gold, low, high = series(run["points"], "gold")
        if name.startswith("member"):
            axes[0].plot(d, gold, "-", color="grey", alpha=0.5, linewidth=0.8,
                         label="single members" if name == "member 0" else None)
        elif name.startswith("ensemble uwo λ"):  # the extra lambdas: same colour as uwo, dashed
            axes[0].plot(d, gold, "o--", color=_COLOURS["ensemble uwo"], alpha=0.6, markersize=3, label=name)
        else:
            axes[0].plot(d, gold, "o-", color=_COLOURS.get(name), markersize=3, label=name)
            axes[0].fill_between(d, low, high, color=_COLOURS.get(name), alpha=0.1, linewidth=0)
    axes[0].set(xlabel="√KL_bon  (nats^½)", ylabel="gold reward (SFT = 0)", title="Best-of-n, same samples re-ranked")
    for name, run in list(results["ppo"].items()) + [(f"DPO β={results['dpo']['beta']:g}", results["dpo"])]:
        scorer = name.split(", ", 1)[-1]
        d = [p["sqrt_kl"] for p in run["points"]]
        gold, low, high = series(run["points"], "gold")
        colour = _COLOURS.get(scorer, "tab:purple")
        axes[1].plot(d, gold, "*--" if name.startswith("DPO") else "o-", color=colour, markersize=4, label=name)
        axes[1].fill_between(d, low, high, color=colour, alpha=0.1, linewidth=0)
    axes[1].set(xlabel="√KL(π ‖ π_SFT)  (nats^½, held-out prompts)", title="PPO against RM / ensemble, and DPO")
    for ax in axes:
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
