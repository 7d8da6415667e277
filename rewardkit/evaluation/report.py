"""`rewardkit eval --report DIR`: report.md, report.html, plots/*.png and metrics.json from `summarize` results."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rewardkit.evaluation.plots import plot_accuracy, plot_length, plot_reliability, plot_subsets
from rewardkit.reporting import Document

HOW_TO_READ = [
    "**accuracy**: share of labelled comparisons where the favoured response gets the higher reward; equal rewards "
    "count half, comparisons labelled as ties are left out (counted as `ties`). Soft labels count for the side "
    "they favour.",
    "**95% CI**: percentile bootstrap interval, resampling whole prompts (seeded).",
    "**ECE / Brier / log-loss**: calibration of P(w beats l) = σ((r_w − r_l)/T) against the label probability, "
    "each comparison in both orientations; 10 equal-width bins for ECE.",
    "**length**: correlation of reward with response length over all responses; `RM prefers longer` is the share "
    "of pairs of unequal length where the longer response gets the higher reward; the length-only baseline is the "
    "accuracy of an RM whose reward is the token count.",
]


def write_eval_report(results: dict[str, dict], output_dir: str | Path, model: str = "") -> dict[str, Path]:
    output_dir = Path(output_dir)
    plots = output_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    files = {"accuracy": plot_accuracy(results, plots / "accuracy.png")}
    document = Document("Reward model evaluation")
    document.paragraph(f"Model `{model}` on {len(results)} dataset(s)." if model else f"{len(results)} dataset(s).")
    document.bullets(HOW_TO_READ)
    document.table(
        ["dataset", "accuracy", "95% CI", "pairs", "ties", "ECE", "ρ(reward, tokens)", "RM prefers longer",
         "length-only acc."],
        [[name, r["accuracy"], _interval(r["accuracy_ci"]), r["num_comparisons"], r["num_tied_labels"],
          r["calibration"]["before"]["ece"], r["length"]["spearman_tokens"], r["length"]["rm_prefers_longer"],
          r["length"]["length_only_accuracy"]] for name, r in results.items()],
    )
    document.image("plots/accuracy.png", "Accuracy with 95% bootstrap intervals; x: the length-only baseline")
    for index, (name, result) in enumerate(results.items()):
        slug = f"{index}-{re.sub(r'[^A-Za-z0-9]+', '-', Path(name).name).strip('-')[:40]}"
        files |= _dataset_section(document, name, result, plots, slug)

    return files | write_documents(document, results, output_dir)


def write_documents(document: Document, results: dict, output_dir: Path) -> dict[str, Path]:
    """report.md, report.html and metrics.json of an evaluation report."""
    files = {"markdown": output_dir / "report.md", "html": output_dir / "report.html",
             "metrics": output_dir / "metrics.json"}
    files["markdown"].write_text(document.to_markdown())
    files["html"].write_text(document.to_html())
    files["metrics"].write_text(json.dumps(results, indent=2))
    return files


def _interval(ci: dict) -> str:
    return f"[{ci['low']:.3f}, {ci['high']:.3f}]"


def _dataset_section(document: Document, name: str, r: dict, plots: Path, slug: str) -> dict[str, Path]:
    files = {}
    document.heading(name)
    document.table(["metric", "value"], [
        ["accuracy", r["accuracy"]],
        ["95% CI", _interval(r["accuracy_ci"])],
        ["mean margin r(better) − r(worse)", r["mean_margin"]],
        ["comparisons scored (ties left out)", f"{r['num_comparisons']} ({r['num_tied_labels']})"],
        ["groups / responses", f"{r['num_groups']} / {r['num_responses']}"],
        ["sequences truncated", r["truncated"]],
    ])
    if "subsets" in r:
        document.paragraph(f"Per subset; RewardBench-style overall score (mean of section scores, each the "
                           f"prompt-weighted mean of its subsets): **{r['overall']:.3f}**.")
        if set(r["sections"]) != set(r["subsets"]):  # by default each subset is its own section
            document.table(["section", "score"], [[s, v] for s, v in r["sections"].items()])
        rows = sorted(r["subsets"].items(), key=lambda item: -item[1]["num_prompts"])
        document.table(["subset", "accuracy", "prompts", "comparisons"],
                       [[s, v["accuracy"], v["num_prompts"], v["num_comparisons"]] for s, v in rows])
        files[f"subsets-{slug}"] = plot_subsets(name, r, plots / f"subsets-{slug}.png")
        document.image(f"plots/subsets-{slug}.png", "Accuracy per subset")
    if "ranking" in r:
        k = r["ranking"]
        document.paragraph(f"K-wise groups (K ≥ 3): {k['num_groups']}; top-1 accuracy **{k['top1_accuracy']:.3f}**, "
                           f"mean Kendall τ-b **{k['kendall_tau']:.3f}** (pairwise accuracy above counts all pairs).")
    if "agreement" in r:
        _agreement(document, r["agreement"])
    _calibration(document, r["calibration"])
    files[f"reliability-{slug}"] = plot_reliability(name, r["calibration"], plots / f"reliability-{slug}.png")
    document.image(f"plots/reliability-{slug}.png", "Reliability diagram")
    length = r["length"]
    document.table(["length bias", "value"], [
        ["Pearson / Spearman (reward, tokens)", f"{length['pearson_tokens']:.3f} / {length['spearman_tokens']:.3f}"],
        ["Pearson / Spearman (reward, characters)",
         f"{length['pearson_characters']:.3f} / {length['spearman_characters']:.3f}"],
        [f"accuracy, chosen is longer ({length['num_chosen_longer']} pairs)", length["accuracy_chosen_longer"]],
        [f"accuracy, chosen is shorter ({length['num_chosen_shorter']} pairs)", length["accuracy_chosen_shorter"]],
        ["RM prefers the longer response", length["rm_prefers_longer"]],
        ["length-only RM accuracy", length["length_only_accuracy"]],
    ])
    files[f"length-{slug}"] = plot_length(name, length, plots / f"length-{slug}.png")
    document.image(f"plots/length-{slug}.png", "Reward by response length")
    return files


def _agreement(document: Document, a: dict) -> None:
    document.paragraph(
        f"Agreement ceiling ({a['num_annotators']} labels on {a['num_comparisons']} comparisons): annotators agree "
        f"with the majority of the others on **{a['annotator_ceiling']:.3f}**, the RM with that same majority on "
        f"**{a['rm_vs_others_majority']:.3f}**; the RM agrees with the majority of all annotators on "
        f"**{a['rm_vs_majority']:.3f}**. Mean pairwise annotator agreement (ties as a label): "
        f"{a['mean_pairwise_agreement']:.3f}.")
    document.table(
        ["annotator", "annotator vs others' majority", "RM vs others' majority", "pairs", "RM vs annotator"],
        [[row["annotator"], row["annotator_vs_others_majority"], row["rm_vs_others_majority"], row["num_pairs"],
          row["rm_vs_annotator"]] for row in a["per_annotator"]],
    )


def _calibration(document: Document, c: dict) -> None:
    rows = [["T = 1", c["before"]["ece"], c["before"]["brier"], c["before"]["log_loss"],
             c["before"]["num_comparisons"]]]
    if c["after"]:
        rows.append([f"T = {c['temperature']:.3f}", c["after"]["ece"], c["after"]["brier"], c["after"]["log_loss"],
                     c["after"]["num_comparisons"]])
        bound = " It sits at the search bound: the reward differences say nothing about the outcome here, so the " \
            "best forecast is 0.5." if c["temperature"] >= 999 else ""
        document.paragraph(f"Temperature fitted on {c['fitted_on']}.{bound}")
    document.table(["calibration", "ECE", "Brier", "log-loss", "comparisons"], rows)
