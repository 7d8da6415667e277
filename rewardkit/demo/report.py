"""Turn the demo's combined results into `report.md` / `report.html` with plots and an account of what happened.

Every number comes from results.json. A verdict ("gold fell after its peak") is written only when its 95% interval
lies on one side of zero; otherwise the report says the question is not resolved at this sample size.
"""

from __future__ import annotations

import json
from pathlib import Path

from rewardkit.demo.plots import (
    GOLD_TERMS,
    number,
    plot_best_of_n,
    plot_controls,
    plot_ppo,
    plot_ppo_features,
    plot_reward_models,
)
from rewardkit.demo.ppo_runs import CONTROLS, DEFAULT_RM, GOLD_RM, UNBIASED_RM, UTILITY
from rewardkit.reporting import Document
from rewardkit.rl.statistics import NOT_RESOLVED, Estimate, verdict
from rewardkit.world.ceilings import LENGTH_RULE
from rewardkit.world.ceilings import UTILITY as UTILITY_JUDGE

FEATURES = ("length", "format_rate", "coverage", "topicality", "repetition", "keywords")


def estimate(value: dict) -> Estimate:
    return Estimate(number(value["value"]), number(value["low"]), number(value["high"]))


def fmt(value: dict, spec: str = "+.2f") -> str:
    """'+0.27 [+0.20, +0.33]', or a plain number when there is no interval."""
    return estimate(value).format(spec) if isinstance(value, dict) else format(number(value), spec)


def pct(value: dict) -> str:
    """An accuracy as a percentage; its interval clipped to [0, 1], where accuracies live (a t interval over few
    seeds can reach past them)."""
    if not isinstance(value, dict):
        return format(number(value), ".1%")
    clipped = estimate(value)
    return Estimate(clipped.value, max(clipped.low, 0.0), min(clipped.high, 1.0)).format(".1%")


def points(value: dict | Estimate) -> str:
    """A difference of accuracies in percentage points: '-7.5 points [-8.7, -6.3]'."""
    value = value if isinstance(value, Estimate) else estimate(value)
    return f"{Estimate(100 * value.value, 100 * value.low, 100 * value.high).format('+.1f')} points"


def claim(value: dict | Estimate, if_above: str, if_below: str, question: str, what: str = "",
          shown: str | None = None) -> str:
    """'gold first rose (gold at the peak: +0.28 [+0.20, +0.33])', or 'whether gold first rose is not resolved at
    this sample size (gold at the peak: ...)'. `shown`: the estimate as text (default: +0.00 [...])."""
    value = value if isinstance(value, Estimate) else estimate(value)
    said = verdict(value, if_above, if_below)
    detail = f"({what}: {shown or value.format()})" if what else f"({shown or value.format()})"
    if said == NOT_RESOLVED:
        return f"whether {question} is {NOT_RESOLVED} {detail}"
    return f"{said} {detail}"


def per_seed(value: dict, spec: str = "+.2f") -> str:
    seeds = value.get("per_seed") if isinstance(value, dict) else None
    return "" if not seeds else " (per seed: " + ", ".join(format(number(v), spec) for v in seeds) + ")"


def write_report(results: dict, output_dir: str | Path) -> dict[str, Path]:
    output_dir = Path(output_dir)
    plots = output_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    files = {
        "best_of_n": plot_best_of_n(results["best_of_n"][DEFAULT_RM], plots / "best_of_n.png"),
        "ppo": plot_ppo(results["ppo"], plots / "ppo.png"),
        "ppo_features": plot_ppo_features(results["ppo"], plots / "ppo_features.png"),
        "reward_models": plot_reward_models(results["ceilings"], results["reward_models"]["runs"],
                                            plots / "reward_models.png"),
        "controls": plot_controls(results["best_of_n"], results.get("controls_ppo"), plots / "controls.png"),
    }
    timings_file = output_dir / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else None
    document = build_document(results, {name: f"plots/{path.name}" for name, path in files.items()}, timings)
    files["markdown"] = output_dir / "report.md"
    files["html"] = output_dir / "report.html"
    files["markdown"].write_text(document.to_markdown())
    files["html"].write_text(document.to_html())
    return files


# ------------------------------------------------------------------------------------------------ the story
def summary_lines(results: dict) -> list[str]:
    """The story in a few sentences, every number from the results, every verdict backed by its interval."""
    lines = [_ceilings_sentence(results), _length_sentence(results), _best_of_n_sentence(results)]
    lines += [_ppo_sentence(name, run, results) for name, run in results["ppo"].items()]
    lines += _controls_sentences(results)
    return lines


def _ceilings_sentence(results: dict) -> str:
    c = results["ceilings"]
    rm, rule, utility = (c["judges"][name] for name in (DEFAULT_RM, LENGTH_RULE, UTILITY_JUDGE))
    over_rule = estimate(rm["vs_gold_minus_length_rule"])
    return (
        f"On held-out rankings the reward model reaches {pct(rm['vs_labels'])} against the recorded labels "
        f"({pct(rm['expected_vs_labels'])} expected against a fresh label) and {pct(rm['vs_gold'])} against gold. "
        f"The ceiling against one noisy label is the Bayes ceiling mean max(p, 1−p) = {pct(c['bayes_ceiling'])}, "
        f"not the labeller agreement mean p² + (1−p)² = {pct(c['labeller_agreement'])}; the RM's expected "
        f"accuracy minus the Bayes ceiling: {points(rm['expected_minus_bayes'])}. "
        f"Baselines: the length-only rule (longer wins) {pct(rule['vs_labels'])} against labels and "
        f"{pct(rule['vs_gold'])} against gold; the noise-free labeller utility (no RM, no noise, the biases kept) "
        f"{pct(utility['vs_gold'])} against gold. Against gold the RM "
        + claim(over_rule, "beats the length-only rule", "is below the length-only rule",
                "it beats the length-only rule", "RM minus rule", points(over_rule)) + "."
    )


def _length_sentence(results: dict) -> str:
    by_length = results["accuracy_by_length"][DEFAULT_RM]
    longer, shorter = by_length["better is longer"], by_length["better is shorter"]
    return (f"How far the RM follows length: its reward correlates with length (Pearson r = "
            f"{number(results['reward_models']['length_correlation']):.2f}); it agrees with the label on "
            f"{pct(longer['accuracy'])} of pairs whose labelled-better response is longer "
            f"({number(longer['share']):.0%} of pairs) and on {pct(shorter['accuracy'])} when it is shorter "
            f"({number(shorter['share']):.0%}); the length-only rule scores 100% and 0% there.")


def _curve_verdicts(curve: dict, unit: str) -> str:
    """Did gold rise, fall after its peak, end below SFT: each stated only when its interval says so."""
    return "; ".join([
        claim(curve["gain_at_peak"], "gold first rose", "gold never rose above SFT", "gold first rose",
              "gold at the peak, cross-fitted"),
        claim(curve["drop_after_peak"], "then fell", "it was still rising at the end", "gold fell after its peak",
              "peak minus end, cross-fitted"),
        claim(curve["end"]["gold"], f"ended above SFT at {unit}", f"ended below SFT at {unit}",
              f"gold at {unit} differs from SFT's", "gold"),
    ])


def _fit_text(curve: dict) -> str:
    fit, peak = curve["fit"], curve["peak"]
    form = "d(α − βd)" if fit["form"] == "bon" else "d(α − β log d)"
    return (f"Fit {form}: α = {fmt(fit['alpha'], '.2f')}, β = {fmt(fit['beta'], '.2f')}; R² {number(fit['r2']):.2f} "
            f"on the fitted points, {_r2(fit['r2_cv'])} held out (leave-one-point-out); fitted peak at √KL = "
            f"{fmt(fit['sqrt_kl_peak'], '.2f')}, observed peak at √KL = {fmt(peak['sqrt_kl'], '.2f')}")


def _r2(value) -> str:
    return "–" if number(value) != number(value) else f"{number(value):.2f}"


def _best_of_n_sentence(results: dict) -> str:
    curve = results["best_of_n"][DEFAULT_RM]
    end = curve["end"]
    return (f"Best-of-n against the RM (held-out prompts, n up to {number(end['n']):.0f}): the proxy rises to "
            f"{fmt(end['proxy'])}; {_curve_verdicts(curve, f'n = {number(end[chr(110)]):.0f}')}. "
            f"{_fit_text(curve)}.")


def _ppo_sentence(name: str, run: dict, results: dict) -> str:
    end, start = run["end"], run["points"][0]
    step0 = estimate(start["gold"])
    sft = f"SFT's own fresh samples at step 0 score {step0.format()} gold, " + (
        "0 within noise" if verdict(step0, "off", "off") == NOT_RESOLVED else
        "off the centre (SFT's best-of-n samples for the same prompts) by more than noise")
    text = (f"PPO {name} against the RM ({number(end['step']):.0f} steps, fresh samples for held-out prompts): "
            f"{sft}; the proxy ends at {fmt(end['proxy'])} at KL {number(end['sqrt_kl']) ** 2:.1f} nats; "
            f"{_curve_verdicts(run, 'the last step')}. {_fit_text(run)}.")
    comparison = results.get("ppo_comparisons", {}).get(f"{name} minus β=0, gold at the end")
    if comparison:
        kept = claim(comparison, "it kept more gold than β=0 at the end", "it kept less gold than β=0 at the end",
                     "it kept more gold than β=0 at the end")
        text += f" Paired with β=0 on the same prompts: {kept}."
    return text


def _controls_sentences(results: dict) -> list[str]:
    lines = []
    for kind, curves, where in (("best_of_n", results["best_of_n"], "best-of-n at the largest n"),
                                ("ppo", results.get("controls_ppo"), "PPO β=0 at the last control step")):
        if not curves:
            continue
        ends = "; ".join(f"{name} {fmt(curves[name]['end']['gold'])}" for name in CONTROLS)
        diffs = results["controls"][kind]
        relative = "; ".join(
            f"{name}: " + claim(diffs[name], "kept more gold", "kept less gold", "it kept more gold")
            for name in CONTROLS if name != DEFAULT_RM)
        lines.append(f"Mechanism controls, {where}: gold (SFT = 0) under {ends}. Paired against the default RM "
                     f"(same prompts{', same samples' if kind == 'best_of_n' else ''}): {relative}.")
        lines.append(_decomposition_sentence(curves[DEFAULT_RM], where))
    return lines + _matched_kl_sentences(results)


def _matched_kl_sentences(results: dict) -> list[str]:
    """The PPO controls at equal KL: equal steps are not equal KL, so only this comparison says which proxy loses
    more gold for the same distance from SFT. Once with every proxy, once with the reward models alone."""
    lines = []
    for key, which in (("ppo_matched_kl", "every run"), ("ppo_matched_kl_reward_models", "every reward model's run")):
        matched = results["controls"].get(key)
        if not matched:
            continue
        names = [name for name in CONTROLS if name in matched["gold"]]
        golds = "; ".join(f"{name} {fmt(matched['gold'][name])}" for name in names)
        relative = "; ".join(f"{name}: " + claim(matched["differences"][name], "kept more gold", "kept less gold",
                                                 "it kept more gold") for name in names if name != DEFAULT_RM)
        lines.append(f"At matched KL (PPO β=0 against each proxy read at √KL = {number(matched['sqrt_kl']):.2f}, the "
                     f"largest that {which} reached): gold {golds}. Paired against the default RM: {relative}.")
    return lines


def _decomposition_sentence(curve: dict, where: str) -> str:
    """Which gold terms moved under the default RM, resolved ones only, largest first; per seed when there are
    several."""
    end = curve["end"]
    terms = sorted(GOLD_TERMS, key=lambda term: number(end[f"gold:{term}"]))
    resolved = [f"{term} {fmt(end[f'gold:{term}'])}{per_seed(end[f'gold:{term}'])}" for term in terms
                if verdict(estimate(end[f"gold:{term}"]), "up", "down") != NOT_RESOLVED]
    unresolved = [term for term in terms if verdict(estimate(end[f"gold:{term}"]), "up", "down") == NOT_RESOLVED]
    features = "; ".join(
        claim(end[name], f"{name.replace('_', ' ')} rose", f"{name.replace('_', ' ')} fell",
              f"{name.replace('_', ' ')} changed") + per_seed(end[name]) for name in FEATURES)
    text = (f"Under the default RM ({where}) the gold change {fmt(end['gold'])} splits into terms: "
            + ("; ".join(resolved) if resolved else "no term resolved"))
    if unresolved:
        text += f"; {', '.join(unresolved)}: {NOT_RESOLVED}"
    return text + f". The responses changed: {features}."


# ------------------------------------------------------------------------------------------------ the document
def build_document(results: dict, plots: dict[str, str], timings: dict | None = None) -> Document:
    data, config, ceilings = results["data"], results["config"], results["ceilings"]
    seeds = results["seeds"]
    doc = Document("rewardkit demo: a reward model's whole life in a world with a known gold reward")
    doc.paragraph(f"**Seeds {', '.join(map(str, seeds))}.** Intervals: {results['intervals']}. A verdict is stated "
                  f"only when its 95% interval excludes zero; otherwise the report says \"{NOT_RESOLVED}\".")
    doc.heading("What happened")
    doc.bullets(summary_lines(results))
    doc.paragraph(
        "The setup: the labellers rank by gold reward plus a bonus per word and per list marker "
        f"(length bias {number(data['labeller_length_bias']):g}, format bias {number(data['labeller_format_bias']):g},"
        f" noise temperature {number(data['labeller_temperature']):.2f}). The gold reward penalizes responses longer "
        f"than {config['world']['optimal_length']} content words, repetition and off-topic words, and gives nothing "
        "for markers. Rewards are centred per held-out prompt on the SFT policy's samples, so SFT scores 0 (Gao et "
        "al. 2022); best-of-n and PPO are measured on the same held-out prompts, PPO on fresh samples at fixed steps."
    )

    doc.heading("1. Preference data")
    doc.table(["train prompts", "comparisons", "mean K", "val prompts", "labeller agreement (train)",
               "SFT length", "SFT format rate", "unbiased labeller temperature"],
              [[data["train_prompts"], data["train_comparisons"], data["mean_k"], data["val_prompts"],
                data["labeller_agreement_train"], data["sft_mean_length"], data["sft_format_rate"],
                data["unbiased_labeller_temperature"]]])

    doc.heading("2. Reward models, ceilings and baselines")
    doc.paragraph(
        f"{number(ceilings['pairs']):,.0f} held-out pairs from {number(ceilings['prompts']):.0f} rankings. Against "
        "the recorded label: one noisy draw per pair. Expected: against a fresh label (p or 1 − p per pair, known "
        "here), the same quantity without the draw noise. Ties of a judge count 1/2 both ways; pairs gold ties "
        f"({number(ceilings['gold_ties']):.0f}) are left out against gold.")
    doc.table(["ceiling", "value"], [
        ["Bayes ceiling, mean max(p, 1−p)", pct(ceilings["bayes_ceiling"])],
        ["labeller agreement, mean p² + (1−p)²", pct(ceilings["labeller_agreement"])],
        ["held-out labels against gold", pct(ceilings["labels_vs_gold"])],
    ])
    runs = results["reward_models"]["runs"]
    doc.table(["judge", "trained on", "vs labels", "vs a fresh label (expected)", "vs gold",
               "minus Bayes ceiling", "vs gold minus length rule"],
              [[name, _trained_on(runs.get(name)), pct(j["vs_labels"]), pct(j["expected_vs_labels"]),
                pct(j["vs_gold"]), points(j["expected_minus_bayes"]), points(j["vs_gold_minus_length_rule"])]
               for name, j in ceilings["judges"].items()])
    doc.table(["judge", "labelled-better response is", "share of pairs", "accuracy vs labels"],
              [[judge, case, f"{number(row['share']):.1%}", pct(row["accuracy"])]
               for judge, cases in results["accuracy_by_length"].items() for case, row in cases.items()])
    doc.image(plots["reward_models"], "Accuracy of each judge with the Bayes ceiling and labeller agreement; "
                                      "accuracy against gold as data grows, SFT vs random init")

    doc.heading("3. Best-of-n against the reward model")
    curve = results["best_of_n"][DEFAULT_RM]
    doc.table(["n", "KL_bon", "proxy", "gold", "length", "format rate"],
              [[p["n"], p["kl"], fmt(p["proxy"]), fmt(p["gold"]), fmt(p["length"], "+.1f"),
                fmt(p["format_rate"], "+.3f")] for p in curve["points"]])
    doc.paragraph(_fit_text(curve) + ".")
    doc.image(plots["best_of_n"], "Best-of-n: proxy and gold reward against √KL with 95% bands and Gao et al.'s fit")

    doc.heading("4. PPO against the reward model")
    for name, run in results["ppo"].items():
        doc.paragraph(f"**PPO {name}** (fresh samples for {number(run['prompts']):.0f} held-out prompts at each "
                      f"step below). {_fit_text(run)}.")
        doc.table(["step", "KL", "proxy", "gold", "length", "format rate", "topicality", "coverage"],
                  [[p["step"], p["kl"], fmt(p["proxy"]), fmt(p["gold"]), fmt(p["length"], "+.1f"),
                    fmt(p["format_rate"], "+.3f"), fmt(p["topicality"], "+.3f"), fmt(p["coverage"], "+.3f")]
                   for p in run["points"]])
    doc.image(plots["ppo"], "PPO: proxy and gold reward against √KL for each KL penalty β, with fits; on the right "
                            "the penalized runs step by step")
    doc.image(plots["ppo_features"], "PPO: what changes in the responses, against steps")

    doc.heading("5. Mechanism controls: which part of the setup makes gold fall")
    doc.paragraph(
        f"The same optimizations against four proxies: the {UTILITY} (the labellers' own utility without noise or a "
        f"reward model: bias alone), the {GOLD_RM} (Gao et al.'s setting: the same responses ranked by gold, no "
        f"noise, no bias: RM error alone), the {UNBIASED_RM} (an unbiased labeller calibrated to the same agreement: "
        f"noise and RM error, no bias) and the {DEFAULT_RM}. Best-of-n re-ranks one sample set; PPO runs at β = 0 "
        f"for {config['control_ppo_steps']} steps (the default RM's run is the main β = 0 run up to that step).")
    controls_ppo = results.get("controls_ppo")
    rows = []
    for name in CONTROLS:
        row = [name, fmt(results["best_of_n"][name]["end"]["gold"]), fmt(results["best_of_n"][name]["drop_after_peak"])]
        if controls_ppo:
            row += [fmt(controls_ppo[name]["end"]["gold"]), fmt(controls_ppo[name]["drop_after_peak"]),
                    f"{number(controls_ppo[name]['end']['sqrt_kl']) ** 2:.1f}"]
        rows.append(row)
    doc.table(["proxy", "best-of-n: gold at largest n", "best-of-n: drop after peak"]
              + (["PPO: gold at end", "PPO: drop after peak", "PPO: KL at end"] if controls_ppo else []), rows)
    matched = _matched_kl_sentences(results)
    if matched:
        doc.paragraph("Equal steps are not equal KL (see the KL column), so the comparisons at matched KL, not the "
                      "one at equal steps, say which proxy loses more gold for the same distance from SFT. "
                      + " ".join(matched))
    source = controls_ppo or results["best_of_n"]
    doc.paragraph("Where the gold change at the end comes from (change from SFT of each weighted gold term; they sum "
                  "to the gold change), and what changed in the responses:")
    doc.table(["proxy", "gold", *GOLD_TERMS],
              [[name, fmt(source[name]["end"]["gold"]), *(fmt(source[name]["end"][f"gold:{t}"]) for t in GOLD_TERMS)]
               for name in CONTROLS])
    doc.table(["proxy", *FEATURES],
              [[name, *(fmt(source[name]["end"][f], "+.2f") for f in FEATURES)] for name in CONTROLS])
    if len(seeds) > 1:
        doc.paragraph("Per seed, under the default RM: the gold change by term and what changed in the responses:")
        end = source[DEFAULT_RM]["end"]
        keys = [("gold", "gold"), *((f"gold: {t}", f"gold:{t}") for t in GOLD_TERMS), *((f, f) for f in FEATURES)]
        doc.table(["measure", *(f"seed {seed}" for seed in seeds)],
                  [[label, *(f"{number(v):+.2f}" for v in end[key]["per_seed"])] for label, key in keys])
    doc.image(plots["controls"], "Gold under each proxy: best-of-n, PPO at β = 0, and the gold change by term")

    if "mitigations" in results:
        from rewardkit.demo.mitigations import PLOT, mitigation_blocks

        doc.blocks.extend(mitigation_blocks(results["mitigations"], f"seed-{results['mitigations']['seed']}/{PLOT}"))

    doc.heading("6. Reproducibility")
    doc.paragraph(
        "One seed drives the world (prompt split, demonstrations), the SFT policy, collection and labellers, every "
        "reward model, best-of-n, PPO and the held-out evaluation (each stage its own stream derived from the seed). "
        "The same seed on the same machine writes the same results.json, byte for byte: the demo runs single-"
        "threaded with torch's deterministic algorithms. Across machines it is not bit-exact: CPUs with different "
        "vector units (AVX2, AVX-512, AMX) run different matrix-multiply kernels that add in different orders, so "
        "trained weights differ in the last bits and sampled tokens eventually diverge; the intervals, not the "
        "digits, are what should agree.")

    if timings:
        doc.heading("Timings (seconds; timings.json)")
        doc.paragraph(f"{timings['cpu']}, {timings['cpu_count']} CPUs, torch {timings['torch']} with "
                      f"{timings['torch_threads']} thread; load average at the end {timings['load_average']}.")
        stages = list(next(iter(timings["seconds"].values())))
        doc.table(["seed", *stages], [[seed, *(row.get(s, "") for s in stages)]
                                      for seed, row in timings["seconds"].items()])
    return doc


def _trained_on(run: dict | None) -> str:
    if run is None:
        return "–"
    return f"{run['labels']}, {number(run['comparisons']):,.0f} comparisons, from {run['init']}"
