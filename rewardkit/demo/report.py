"""Turn the demo's results into `report.md` / `report.html` with plots and a short account of what happened."""

from __future__ import annotations

from pathlib import Path

from rewardkit.demo.document import Document
from rewardkit.demo.plots import plot_best_of_n, plot_ppo, plot_ppo_features, plot_reward_models


def write_report(results: dict, output_dir: str | Path) -> dict[str, Path]:
    output_dir = Path(output_dir)
    plots = output_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    files = {
        "best_of_n": plot_best_of_n(results["best_of_n"], plots / "best_of_n.png"),
        "ppo": plot_ppo(results["ppo"], plots / "ppo.png"),
        "ppo_features": plot_ppo_features(results["ppo"], plots / "ppo_length_format.png"),
        "reward_models": plot_reward_models(results["reward_models"], results["data"]["labeller_agreement"],
                                            plots / "reward_models.png"),
    }
    document = build_document(results, {name: f"plots/{path.name}" for name, path in files.items()})
    files["markdown"] = output_dir / "report.md"
    files["html"] = output_dir / "report.html"
    files["markdown"].write_text(document.to_markdown())
    files["html"].write_text(document.to_html())
    return files


def summary_lines(results: dict) -> list[str]:
    """The story in a few sentences, every number taken from the results."""
    data, rms, bon = results["data"], results["reward_models"], results["best_of_n"]
    main = rms["final"]["SFT init"]
    lines = [
        f"Two independent simulated labellers agree on {data['labeller_agreement']:.1%} of pairs (InstructGPT: "
        f"72.6%): this is the ceiling for accuracy against held-out labels. A single labeller orders "
        f"{data['labeller_accuracy_vs_gold']:.1%} of pairs as the gold reward does.",
        f"The reward model trained from the SFT checkpoint on {main['comparisons']:,} comparisons reaches "
        f"{main['accuracy_vs_labels']:.1%} accuracy against held-out labels and {main['accuracy_vs_gold']:.1%} "
        f"against gold; from random initialization: {rms['final']['random init']['accuracy_vs_labels']:.1%} and "
        f"{rms['final']['random init']['accuracy_vs_gold']:.1%}. Its rewards correlate with response length "
        f"(Pearson r = {rms['length_correlation']:.2f}): it learned the labellers' length bias.",
        _bon_sentence(bon),
    ]
    lines += [_ppo_sentence(name, run) for name, run in results["ppo"].items()]
    lengths = {name: (run["eval"][0]["length"], run["eval"][-1]["length"]) for name, run in results["ppo"].items()}
    growth = "; ".join(f"{name}: {a:.1f} → {b:.1f} words" for name, (a, b) in lengths.items())
    lines.append(f"Response length over PPO ({growth}); the gold reward's optimum is "
                 f"{results['config']['world']['optimal_length']} content words.")
    return lines


def _bon_sentence(bon: dict) -> str:
    peak, fit = bon["peak"], bon["gold_fit"]
    end = bon["curve"][-1]
    text = (f"Best-of-n: proxy reward rises to {end['proxy']:+.2f} at n = {end['n']} (√KL = {end['sqrt_kl']:.2f}); "
            f"gold peaks at {peak['gold_at_peak']:+.2f} at n = {peak['n']} and ends at {end['gold']:+.2f}. ")
    text += f"Fit d(α − βd): α = {fit['alpha']:.3f}, β = {fit['beta']:.3f}, R² = {fit['r2']:.2f}."
    return text


def _ppo_sentence(name: str, run: dict) -> str:
    peak, end, fit = run["peak"], run["eval"][-1], run["gold_fit"]
    verdict = ("gold then fell while the proxy kept rising — over-optimization"
               if peak["gold_fell_after_peak"] and end["proxy"] >= peak["proxy_at_peak"]
               else "gold did not fall within this run")
    return (f"{name}: proxy {run['eval'][0]['proxy']:+.2f} → {end['proxy']:+.2f}, KL → {end['kl']:.1f} nats; gold "
            f"peaked at {peak['gold_at_peak']:+.2f} (step {peak['step']}, √KL = {peak['sqrt_kl_at_peak']:.2f}) and "
            f"ended at {end['gold']:+.2f}: {verdict}. Fit d(α − β log d): α = {fit['alpha']:.3f}, "
            f"β = {fit['beta']:.3f}, R² = {fit['r2']:.2f}.")


def build_document(results: dict, plots: dict[str, str]) -> Document:
    data, rms, config = results["data"], results["reward_models"], results["config"]
    doc = Document("rewardkit demo: a reward model's whole life in a world with a known gold reward")
    doc.heading("What happened")
    doc.bullets(summary_lines(results))
    doc.paragraph(
        "What drives it: the labellers rank by gold reward plus a bonus per word and per list marker "
        f"(length bias {data['labeller_length_bias']:g}, format bias {data['labeller_format_bias']:g}, "
        f"noise temperature {data['labeller_temperature']:.2f}). The gold reward penalizes responses longer than "
        f"{config['world']['optimal_length']} content words, repetition and off-topic words, and gives nothing for "
        "markers. The reward model cannot tell the biases from quality, so optimizing it hard buys length and "
        "format that gold does not value. Rewards are centred so that the SFT policy scores 0 (Gao et al. 2022)."
    )

    doc.heading("1. Preference data")
    doc.table(["train prompts", "comparisons", "mean K", "val prompts", "labeller agreement", "SFT length",
               "SFT format rate"],
              [[data["train_prompts"], data["train_comparisons"], data["mean_k"], data["val_prompts"],
                data["labeller_agreement"], data["sft_mean_length"], data["sft_format_rate"]]])

    doc.heading("2. Reward models")
    doc.table(["reward model", "comparisons", "accuracy vs labels", "accuracy vs gold", "train seconds"],
              [[name, m["comparisons"], m["accuracy_vs_labels"], m["accuracy_vs_gold"], m["seconds"]]
               for name, m in rms["final"].items()])
    doc.table(["init", "comparisons", "accuracy vs labels", "accuracy vs gold"],
              [[name, p["comparisons"], p["accuracy_vs_labels"], p["accuracy_vs_gold"]]
               for name, points in rms["data_scaling"].items() for p in points])
    doc.image(plots["reward_models"], "RM accuracy against held-out labels and gold; accuracy vs data for SFT and "
                                      "random initialization")

    doc.heading("3. Best-of-n against the reward model")
    doc.table(["n", "KL_bon", "√KL", "proxy", "gold", "length", "format rate"],
              [[r["n"], r["kl"], r["sqrt_kl"], r["proxy"], r["gold"], r["length"], r["format_rate"]]
               for r in results["best_of_n"]["curve"]])
    doc.image(plots["best_of_n"], "Best-of-n: proxy and gold reward against √KL, with Gao et al.'s fit")

    doc.heading("4. PPO against the reward model")
    for name, run in results["ppo"].items():
        doc.paragraph(f"**{name}**")
        doc.table(["step", "KL", "proxy", "gold", "length", "format rate"],
                  [[p["step"], p["kl"], p["proxy"], p["gold"], p["length"], p["format_rate"]] for p in run["eval"]])
    doc.image(plots["ppo"], "PPO: proxy and gold reward against √KL for each KL penalty β, with fits")
    doc.image(plots["ppo_features"], "PPO: response length and list-marker rate against steps")

    if "mitigations" in results:
        from rewardkit.demo.mitigations import mitigation_blocks

        doc.blocks.extend(mitigation_blocks(results["mitigations"]))

    doc.heading("Timings (seconds)")
    doc.table(list(results["seconds"]), [list(results["seconds"].values())])
    return doc
