"""`rewardkit demo --mitigations`: do reward-model ensembles and DPO help against over-optimization here?

Runs on a finished demo directory (sft-policy/, data/, reward-model/, results.json) and compares, in the same
world and with the same settings, the demo's single reward model against:

    1. ensemble   N reward models from the SFT policy on the same rankings (bootstrap resamples, seeds i)
    2. accuracy   every member, every aggregation and the DPO policy's implicit reward, against held-out labels
                  and against gold
    3. best-of-n  one set of samples, re-ranked by the single RM, by each member, and by each aggregation
                  (mean, worst-case min, uncertainty-weighted mean - lambda * std)          (Coste et al. 2023)
    4. PPO        short runs against ensemble aggregations with the demo's settings, beside the demo's own run
                  against the single RM (same settings and seed)
    5. DPO        a policy trained on the same comparisons from the SFT policy; gold and sequence KL to SFT
                  measured by sampling on held-out prompts

Nothing is tuned to make a method win: what the numbers show is what the report says.
KL on the x-axis: best-of-n uses the analytic bound log n - (n - 1)/n; PPO the rollouts' k1 estimate on
training prompts; DPO the k1 estimate on fresh samples for held-out prompts.
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
from rewardkit.demo.document import Document
from rewardkit.demo.pipeline import Stopwatch, finite_json, fit_to_dict, gold_peak, run_ppo
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
from rewardkit.rl import (
    BestOfNConfig,
    best_of_n_curve,
    best_of_n_estimates,
    doubling_ns,
    fit_best_of_n,
    sample_responses,
    sequence_kl,
)
from rewardkit.training import TrainConfig
from rewardkit.training.sampler import GroupBatchSchedule
from rewardkit.world import World, format_prompt, format_rate, load_world, response_length

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
    # PPO with the demo's settings against ensemble aggregations; the single RM's run is the demo's own (same
    # settings and seed), run again only if the demo has no run with this beta
    ppo_aggregations: tuple[str, ...] = ("mean", "uwo")
    ppo_steps: int = 30
    ppo_beta: float = 0.0  # no KL penalty: where over-optimization shows fastest
    ppo_eval_points: int = 6
    # DPO from the SFT policy on the same rankings
    dpo_beta: float = 0.1
    dpo_epochs: float = 1.0
    dpo_batch_size: int = 16
    dpo_learning_rate: float = 5e-4
    dpo_eval_points: int = 5  # geometrically spaced steps: DPO moves fastest at the start
    dpo_eval_prompts: int = 64  # held-out prompts, sampled dpo_eval_samples times each, to measure gold and KL
    dpo_eval_samples: int = 4

    @classmethod
    def quick(cls) -> MitigationsConfig:
        """About a minute on 2 CPU cores (on a `rewardkit demo --quick` directory)."""
        return cls(members=3, bon_prompts=16, bon_samples=128, bon_n_max=64, ppo_aggregations=("uwo",),
                   ppo_steps=20, ppo_eval_points=5, dpo_eval_points=4, dpo_eval_prompts=32)

    def to_dict(self) -> dict:
        return asdict(self)


def run_mitigations(output_dir: str | Path, config: MitigationsConfig | None = None, progress: bool = True) -> dict:
    """Run every comparison on the demo in `output_dir`; write mitigations.json, mitigations.md and the plot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: see run_demo
    try:
        return _run(Path(output_dir), config or MitigationsConfig(), progress)
    finally:
        torch.set_num_threads(threads)


def _run(output_dir: Path, config: MitigationsConfig, progress: bool) -> dict:
    demo_results = json.loads((output_dir / "results.json").read_text())
    demo = demo_results["config"]
    seed, max_new_tokens = demo["seed"], demo["max_new_tokens"]
    sft_dir = output_dir / "sft-policy"
    world = load_world(str(sft_dir))
    tokenizer = AutoTokenizer.from_pretrained(sft_dir)
    sft = AutoModelForCausalLM.from_pretrained(sft_dir).eval().requires_grad_(False)
    single = RewardModel.from_pretrained(output_dir / "reward-model").eval()
    clock = Stopwatch()
    results: dict = {"config": config.to_dict()}

    with clock.stage("ensemble"):
        ensemble = train_demo_ensemble(output_dir, demo, config, progress)
        val = load_preferences(output_dir / "data" / "val.jsonl", format="ranking")
        results["ensemble"] = {
            "members": ensemble.manifest["members"],
            "val_disagreement": mean_disagreement(ensemble, encode_dataset(val, ensemble.tokenizer,
                                                                           ensemble.max_length), 256),
        }
    with clock.stage("dpo"):
        results["dpo"], dpo_policy = run_dpo(world, sft, tokenizer, output_dir, demo, config, single, progress)
    with clock.stage("accuracy"):
        dpo_scorers = {f"DPO implicit ({mode})": DPOScorer(dpo_policy, tokenizer, sft, config.dpo_beta, mode)
                       for mode in ("reference", "sum", "mean")}
        results["accuracy"] = accuracy_table(world, output_dir, single, ensemble, dpo_scorers, config.uwo_lambda)
    scorers = {"single RM": single.score, **{f"ensemble {agg}": _ensemble_fn(ensemble, agg, config.uwo_lambda)
                                             for agg in ("mean", "min", "uwo")}}
    with clock.stage("best_of_n"):
        results["best_of_n"] = run_ensemble_best_of_n(world, sft, tokenizer, single, ensemble, config, seed,
                                                      max_new_tokens, progress)
    with clock.stage("ppo"):
        results["ppo"] = run_ensemble_ppo(world, sft, tokenizer, scorers, ensemble, demo_results, config, progress)
    results["seconds"] = clock.seconds
    results["seconds"]["total"] = round(sum(clock.seconds.values()), 2)
    results["summary"] = summary_lines(results)

    (output_dir / "plots").mkdir(parents=True, exist_ok=True)
    plot_mitigations(results, output_dir / PLOT)
    document = Document("rewardkit demo: mitigations")
    document.blocks.extend(mitigation_blocks(results, PLOT))
    (output_dir / "mitigations.md").write_text(document.to_markdown())
    results = finite_json(results)
    (output_dir / "mitigations.json").write_text(json.dumps(results, indent=2))
    return results


# ------------------------------------------------------------------------------------------------ stages
def train_demo_ensemble(output_dir: Path, demo: dict, config: MitigationsConfig, progress: bool) -> RewardEnsemble:
    """Members trained exactly like the demo's reward model (same data, steps, learning rate), seeds seed + i."""
    data_dir = output_dir / "data"
    num_train = sum(1 for line in (data_dir / "train.jsonl").read_text().splitlines() if line.strip())
    steps = max(20, int(demo["rm_epochs"] * math.ceil(num_train / demo["rm_batch_size"])))
    train_config = TrainConfig(
        model=str(output_dir / "sft-policy"), data=[str(data_dir / "train.jsonl")],
        eval_data=[str(data_dir / "val.jsonl")], format="ranking", output_dir=str(output_dir / "ensemble"),
        batch_size=demo["rm_batch_size"], learning_rate=demo["rm_learning_rate"], warmup_ratio=0.05,
        seed=demo["seed"], max_steps=steps, eval_steps=10**9, save_steps=10**9, logging_steps=10,
        progress_bar=progress,
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
                           config: MitigationsConfig, seed: int, max_new_tokens: int, progress: bool) -> dict:
    """Sample once; the best-of-n curve of each scorer re-ranks the same samples (paired comparison)."""
    raw_prompts = world.prompts(config.bon_prompts, split="test", seed=seed + 2)
    prompts = [format_prompt(p) for p in raw_prompts]
    result = best_of_n_curve(
        sft, tokenizer, prompts, lambda p, r: single.score(p, r, batch_size=4096),
        BestOfNConfig(n_max=config.bon_n_max, num_samples=config.bon_samples, max_new_tokens=max_new_tokens,
                      sample_batch_size=1024, score_batch_size=4096, seed=seed, progress=progress),
        metrics={"gold": world.gold_reward},
    )
    shape = result.proxy_scores.shape
    flat_prompts = [p for p, texts in zip(prompts, result.responses, strict=True) for _ in texts]
    flat_texts = [t for texts in result.responses for t in texts]
    members = ensemble.score(flat_prompts, flat_texts, batch_size=4096, return_details=True).member_rewards
    members = members.reshape(len(ensemble.members), *shape)
    observed = {
        "gold": result.metric_scores["gold"],
        "length": np.array(response_length(flat_texts), dtype=float).reshape(shape),
        "format_rate": np.array(format_rate(flat_texts), dtype=float).reshape(shape),
        "disagreement": disagreement(members).numpy(),
    }
    proxies = {"single RM": result.proxy_scores}
    proxies |= {f"ensemble {agg}": aggregate(members, agg, config.uwo_lambda).numpy() for agg in ("mean", "min", "uwo")}
    proxies |= {f"ensemble uwo λ={lam:g}": aggregate(members, "uwo", lam).numpy() for lam in config.bon_extra_lambdas}
    proxies |= {f"member {m}": members[m].numpy() for m in range(len(ensemble.members))}
    curves = {}
    for name, proxy in proxies.items():
        rows = best_of_n_estimates(proxy, observed, doubling_ns(config.bon_n_max))
        start = rows[0]
        curve = [{**row, "sqrt_kl": row["sqrt_kl_bon"], "kl": row["kl_bon"], "proxy": row["proxy"] - start["proxy"],
                  "gold": row["gold"] - start["gold"]} for row in rows]
        fit = fit_best_of_n(np.array([r["sqrt_kl"] for r in curve]), np.array([r["gold"] for r in curve]))
        curves[name] = {"curve": curve, "gold_fit": fit_to_dict(fit), "peak": gold_peak(curve, "n")}
    return curves


def run_ensemble_ppo(world: World, sft, tokenizer, scorers: dict, ensemble: RewardEnsemble, demo_results: dict,
                     config: MitigationsConfig, progress: bool) -> dict:
    """The demo's PPO (same prompts, batch size, learning rate, seed) against each ensemble aggregation.

    The single RM's run with this beta is taken from the demo: same settings, and PPO's learning rate is
    constant, so its first `ppo_steps` steps are a `ppo_steps`-step run. Compare runs at equal KL.
    """
    demo = demo_results["config"]
    observed = {
        "gold": world.gold_reward,
        "length": lambda p, r: torch.tensor(response_length(r), dtype=torch.float32),
        "format_rate": lambda p, r: torch.tensor(format_rate(r), dtype=torch.float32),
        "disagreement": lambda p, r: ensemble.score(p, r, batch_size=256, return_details=True).std,
    }
    prefix = f"PPO β={config.ppo_beta:g}"
    runs = {}
    if prefix in demo_results.get("ppo", {}):
        run = {key: value for key, value in demo_results["ppo"][prefix].items() if key != "log"}
        runs[f"{prefix}, single RM"] = {**run, "source": "demo", "disagreement_start": None, "disagreement_end": None}
    names = ([] if runs else ["single RM"]) + [f"ensemble {agg}" for agg in config.ppo_aggregations]
    settings = DemoConfig(seed=demo["seed"], ppo_steps=config.ppo_steps, ppo_batch_size=demo["ppo_batch_size"],
                          ppo_learning_rate=demo["ppo_learning_rate"], ppo_eval_points=config.ppo_eval_points,
                          max_new_tokens=demo["max_new_tokens"])
    for name in names:
        run = run_ppo(world, sft, tokenizer, scorers[name], observed, settings, config.ppo_beta, progress)
        log = run.pop("log")
        window = max(1, len(log) // config.ppo_eval_points)
        runs[f"{prefix}, {name}"] = {
            **run,
            "source": "mitigations",
            "disagreement_start": float(np.mean([row["disagreement"] for row in log[:window]])),
            "disagreement_end": float(np.mean([row["disagreement"] for row in log[-window:]])),
        }
    return runs


def run_dpo(world: World, sft, tokenizer, output_dir: Path, demo: dict, config: MitigationsConfig,
            single: RewardModel, progress: bool) -> tuple[dict, torch.nn.Module]:
    """DPO from the SFT policy on the demo's training rankings; gold, KL, length measured along the way."""
    dataset = load_preferences(output_dir / "data" / "train.jsonl", format="ranking")
    dpo_config = DPOConfig(beta=config.dpo_beta, epochs=config.dpo_epochs, batch_size=config.dpo_batch_size,
                           learning_rate=config.dpo_learning_rate, seed=demo["seed"], progress=progress)
    total = GroupBatchSchedule(len(dataset), config.dpo_batch_size, 1, demo["seed"]).total_steps(config.dpo_epochs,
                                                                                                 None)
    eval_steps = {max(1, round(total ** (k / config.dpo_eval_points))) for k in range(1, config.dpo_eval_points + 1)}
    prompts = world.prompts(config.dpo_eval_prompts, split="test", seed=demo["seed"] + 3) * config.dpo_eval_samples

    def measure(policy, step: int) -> dict:
        samples = sample_responses(policy, tokenizer, [format_prompt(p) for p in prompts], demo["max_new_tokens"],
                                   seed=demo["seed"] + 3)
        kl = sequence_kl(policy, sft, samples.input_ids, samples.attention_mask, samples.response_mask)
        return {
            "step": step,
            "kl": kl.mean().item(),
            "gold": world.gold_reward(prompts, samples.texts).mean().item(),
            "proxy": single.score(samples.prompts, samples.texts, batch_size=1024).mean().item(),
            "length": float(np.mean(response_length(samples.texts))),
            "format_rate": float(np.mean(format_rate(samples.texts))),
        }

    points = [measure(sft, 0)]

    def callback(row: dict, policy) -> None:
        if row["step"] + 1 in eval_steps:
            points.append(measure(policy, row["step"] + 1))

    policy = copy.deepcopy(sft).requires_grad_(True)
    result = train_dpo(policy, sft, tokenizer, dataset, dpo_config, callback=callback)
    policy.eval()
    last = result.log[-1]
    return {"beta": config.dpo_beta, "steps": len(result.log), "points": points,
            "final_train_accuracy": last["accuracy"], "final_train_loss": last["loss"]}, policy


def _ensemble_fn(ensemble: RewardEnsemble, method: str, lam: float):
    return lambda prompts, responses: ensemble.score(prompts, responses, batch_size=256, aggregate=method, lam=lam)


# ------------------------------------------------------------------------------------------------ report
def summary_lines(results: dict) -> list[str]:
    """What happened, every number from the results; no claim that the numbers do not make."""
    bon, acc = results["best_of_n"], results["accuracy"]
    single_bon = bon["single RM"]
    n_max = single_bon["curve"][-1]["n"]
    members = [name for name in bon if name.startswith("member")]
    member_end = [bon[m]["curve"][-1]["gold"] for m in members]
    lines = [
        f"Accuracy against gold on held-out rankings: single RM {acc['single RM']['accuracy_vs_gold']:.1%}, "
        + ", ".join(f"{name} {acc[name]['accuracy_vs_gold']:.1%}" for name in acc if name.startswith("ensemble"))
        + f" (members {min(acc[m]['accuracy_vs_gold'] for m in acc if m.startswith('member')):.1%}–"
        f"{max(acc[m]['accuracy_vs_gold'] for m in acc if m.startswith('member')):.1%}); DPO's implicit reward "
        f"{acc['DPO implicit (reference)']['accuracy_vs_gold']:.1%}.",
        f"Best-of-{n_max} gold (SFT = 0): single RM {single_bon['curve'][-1]['gold']:+.2f} (peak "
        f"{single_bon['peak']['gold_at_peak']:+.2f} at n = {single_bon['peak']['n']}); "
        + "; ".join(f"{name} {bon[name]['curve'][-1]['gold']:+.2f} (peak {bon[name]['peak']['gold_at_peak']:+.2f} "
                    f"at n = {bon[name]['peak']['n']})" for name in bon if name.startswith("ensemble"))
        + f"; single members {min(member_end):+.2f} to {max(member_end):+.2f}. Member disagreement (std) on the "
        f"chosen responses: {bon['ensemble mean']['curve'][0]['disagreement']:.2f} at n = 1, "
        f"{bon['ensemble mean']['curve'][-1]['disagreement']:.2f} at n = {n_max} (re-ranked by the ensemble mean).",
    ]
    single = next((run for name, run in results["ppo"].items() if name.endswith("single RM")), None)
    for name, run in results["ppo"].items():
        peak, end = run["peak"], run["eval"][-1]
        line = (f"{name}: gold peaked at {peak['gold_at_peak']:+.2f} (√KL = {peak['sqrt_kl_at_peak']:.2f}) and was "
                f"{end['gold']:+.2f} at the end, at KL {end['kl']:.1f} nats, length {end['length']:.1f} words")
        if run["disagreement_start"] is not None:
            line += f"; member disagreement {run['disagreement_start']:.2f} → {run['disagreement_end']:.2f}"
        if single is not None and run is not single:
            line += f"; {_single_at(single, end['kl'])}"
        lines.append(line + ".")
    dpo = results["dpo"]
    trained = dpo["points"][1:]
    line = (f"DPO β={dpo['beta']:g} from SFT on the same rankings ({dpo['steps']} steps; SFT on these held-out "
            f"prompts {dpo['points'][0]['gold']:+.2f}): (KL, gold) = "
            + ", ".join(f"({p['kl']:.1f}, {p['gold']:+.2f})" for p in trained)
            + f"; length {trained[-1]['length']:.1f} words at the end")
    if single is not None:
        at_kl = [gold_at_kl(single, p["kl"]) for p in trained]
        line += "; PPO against the single RM at the same KLs: " + ", ".join(
            "–" if gold is None else f"{gold:+.2f}" for gold in at_kl)
    lines.append(line + ".")
    return lines


def gold_at_kl(run: dict, kl: float) -> float | None:
    """A PPO run's gold interpolated at `kl` (None outside the KL range the run covered)."""
    kls = np.array([p["kl"] for p in run["eval"]])
    if not kls.min() <= kl <= kls.max():
        return None
    order = np.argsort(kls)
    return float(np.interp(kl, kls[order], np.array([p["gold"] for p in run["eval"]])[order]))


def _single_at(single: dict, kl: float) -> str:
    gold = gold_at_kl(single, kl)
    if gold is None:
        return "the single RM's PPO run did not pass through that KL"
    return f"PPO against the single RM at the same KL: {gold:+.2f}"


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
        "member learns from the same biased labellers). Best-of-n re-ranks one set of samples, so its curves are "
        "a paired comparison; each PPO and DPO curve is one run (one seed). KL: best-of-n's analytic bound, "
        "PPO's rollout estimate on training prompts, DPO's estimate on fresh samples for held-out prompts."
    )
    doc.bullets(results["summary"])
    doc.table(["scorer", "accuracy vs labels", "accuracy vs gold"],
              [[name, row["accuracy_vs_labels"], row["accuracy_vs_gold"]] for name, row in results["accuracy"].items()])
    n_max = results["best_of_n"]["single RM"]["curve"][-1]["n"]
    doc.table(["best-of-n scorer", "peak gold", "at n", f"gold at n={n_max}", f"length at n={n_max}",
               f"disagreement at n={n_max}", "fit α", "fit β"],
              [[name, b["peak"]["gold_at_peak"], b["peak"]["n"], b["curve"][-1]["gold"], b["curve"][-1]["length"],
                b["curve"][-1]["disagreement"], b["gold_fit"]["alpha"], b["gold_fit"]["beta"]]
               for name, b in results["best_of_n"].items()])
    doc.table(["PPO run", "peak gold", "√KL at peak", "final gold", "final KL", "final length",
               "disagreement start", "disagreement end"],
              [[name, r["peak"]["gold_at_peak"], r["peak"]["sqrt_kl_at_peak"], r["eval"][-1]["gold"],
                r["eval"][-1]["kl"], r["eval"][-1]["length"], _or_dash(r["disagreement_start"]),
                _or_dash(r["disagreement_end"])]
               for name, r in results["ppo"].items()])
    doc.table(["DPO step", "KL (held-out samples)", "gold", "single-RM reward", "length", "format rate"],
              [[p["step"], p["kl"], p["gold"], p["proxy"], p["length"], p["format_rate"]]
               for p in results["dpo"]["points"]])
    doc.image(plot, "Gold reward against √KL: best-of-n re-ranked by each scorer (left); PPO against the single RM "
                    "and ensemble aggregations, and DPO (right)")
    return doc.blocks


def _or_dash(value: float | None) -> float | str:
    return "–" if value is None else value


def plot_mitigations(results: dict, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    for name, run in results["best_of_n"].items():
        d = [row["sqrt_kl"] for row in run["curve"]]
        gold = [row["gold"] for row in run["curve"]]
        if name.startswith("member"):
            axes[0].plot(d, gold, "-", color="grey", alpha=0.5, linewidth=0.8,
                         label="single members" if name == "member 0" else None)
        elif name.startswith("ensemble uwo λ"):  # the extra lambdas: same colour as uwo, dashed
            axes[0].plot(d, gold, "o--", color=_COLOURS["ensemble uwo"], alpha=0.6, markersize=3, label=name)
        else:
            axes[0].plot(d, gold, "o-", color=_COLOURS.get(name), markersize=3, label=name)
    axes[0].set(xlabel="√KL_bon  (nats^½)", ylabel="gold reward (SFT = 0)", title="Best-of-n, same samples re-ranked")
    for name, run in results["ppo"].items():
        scorer = name.split(", ", 1)[1]
        d = [math.sqrt(max(p["kl"], 0.0)) for p in run["eval"]]
        axes[1].plot(d, [p["gold"] for p in run["eval"]], "o-", color=_COLOURS.get(scorer), markersize=3, label=name)
    points = results["dpo"]["points"]
    axes[1].plot([math.sqrt(max(p["kl"], 0.0)) for p in points], [p["gold"] for p in points], "*--",
                 color="tab:purple", markersize=9, label=f"DPO β={results['dpo']['beta']:g} (held-out prompts)")
    axes[1].set(xlabel="√KL(π ‖ π_SFT)  (nats^½)", title="PPO against RM / ensemble, and DPO")
    for ax in axes:
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
