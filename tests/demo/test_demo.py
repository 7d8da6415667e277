"""The demo end to end at a tiny size: seeds reach everything, results reproduce, verdicts carry intervals, the
console names what runs and stays quiet otherwise, and the report and plots are written."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from rewardkit.cli import main
from rewardkit.demo import write_report
from rewardkit.demo.ppo_runs import CONTROLS, DEFAULT_RM, UTILITY
from rewardkit.rl.statistics import is_estimate


def test_the_same_seed_writes_the_same_results_json(two_seeds, seed_one):
    """Seed 1 in a fresh process after seed 0 (PPO in two workers), and alone in this one (no workers): byte for
    byte the same science."""
    (seeds_dir, _), (alone_dir, _) = two_seeds, seed_one
    assert (seeds_dir / "seed-1" / "results.json").read_bytes() == (alone_dir / "seed-1" / "results.json").read_bytes()
    assert (alone_dir / "results.json").read_text() != ""  # the combined file of one seed


def test_the_seed_changes_the_world_and_every_stage(two_seeds):
    seeds_dir, _ = two_seeds
    runs = [json.loads((seeds_dir / f"seed-{s}" / "results.json").read_text()) for s in (0, 1)]
    assert [run["config"]["world"]["seed"] for run in runs] == [0, 1]
    assert [run["config"]["sft"]["seed"] for run in runs] == [0, 1]
    prompts = [(seeds_dir / f"seed-{s}" / "data" / "val.jsonl").read_text() for s in (0, 1)]
    assert prompts[0] != prompts[1]
    references = [json.loads((seeds_dir / f"seed-{s}" / "sft-reference.json").read_text()) for s in (0, 1)]
    assert references[0]["prompts"] != references[1]["prompts"]  # held-out evaluation prompts too
    assert runs[0]["best_of_n"] != runs[1]["best_of_n"] and runs[0]["ppo"] != runs[1]["ppo"]


def test_combined_results_have_intervals_over_seeds(two_seeds):
    seeds_dir, _ = two_seeds
    results = json.loads((seeds_dir / "results.json").read_text())
    assert results["seeds"] == [0, 1] and "t interval over 2 seeds" in results["intervals"]
    gold_end = results["ppo"]["β=0"]["end"]["gold"]
    assert is_estimate({k: gold_end[k] for k in ("value", "low", "high")}) and len(gold_end["per_seed"]) == 2
    assert gold_end["low"] <= gold_end["value"] <= gold_end["high"]
    ceilings = results["ceilings"]
    assert ceilings["bayes_ceiling"]["value"] >= ceilings["labeller_agreement"]["value"]
    assert set(results["best_of_n"]) == set(CONTROLS) and set(results["controls_ppo"]) == set(CONTROLS)
    assert set(results["controls"]["best_of_n"]) == set(CONTROLS) - {DEFAULT_RM}
    matched = results["controls"]["ppo_matched_kl"]  # equal KL, not equal steps: every run read where all reached
    assert set(matched["gold"]) == set(CONTROLS) and set(matched["differences"]) == set(CONTROLS) - {DEFAULT_RM}
    reward_models = results["controls"]["ppo_matched_kl_reward_models"]  # without the slow-moving utility
    assert set(reward_models["differences"]) == set(CONTROLS) - {DEFAULT_RM, UTILITY}
    seed_0 = json.loads((seeds_dir / "seed-0" / "results.json").read_text())
    reached = [max(point["sqrt_kl"] for point in run["points"])
               for name, run in seed_0["controls_ppo"].items() if name != DEFAULT_RM]  # its full β = 0 run counts
    assert 0 <= seed_0["controls"]["ppo_matched_kl"]["sqrt_kl"] <= min(reached) + 1e-6
    timings = json.loads((seeds_dir / "timings.json").read_text())
    assert set(timings["seconds"]) == {"0", "1"} and "load_average" in timings and "cpu" in timings
    assert "seconds" not in json.dumps(results)  # timings never enter results.json


def test_held_out_evaluation_is_centred_on_sft(seed_one):
    _, results = seed_one
    bon = results["best_of_n"][DEFAULT_RM]
    assert [p["n"] for p in bon["points"]] == [1, 2, 4, 8]
    assert bon["points"][0]["gold"] == {"value": 0.0, "low": 0.0, "high": 0.0}  # n = 1 is SFT's own samples
    for run in results["ppo"].values():
        steps = [p["step"] for p in run["points"]]
        assert steps[0] == 0 and steps[-1] == 4 and run["points"][0]["kl"] == 0.0
        assert {"gold", "proxy", "length", "format_rate", "topicality", "coverage", "gold:length"} <= set(run["end"])
        assert {"alpha", "beta", "r2", "r2_cv", "sqrt_kl_peak"} <= set(run["fit"])
    assert "one seed" in results["intervals"]


def test_console_names_every_bar_has_stage_headings_and_no_library_noise(two_seeds):
    _, process = two_seeds
    out = process.stdout + process.stderr
    assert "\r" not in out  # not a terminal: plain lines, no bars redrawn in place
    for heading in ("[seed 0, 1 of 2] 1/6 SFT policy", "[seed 1, 2 of 2] 6/6 PPO", "6/6 PPO: done in"):
        assert heading in out
    assert "RM from SFT, " in out and "comparisons, seed 1" in out and "PPO β=0.05 against the RM" in out
    assert "about" in out and "left for 1 more" in out  # the time the remaining seeds will take
    for noise in ("Writing model shards", "FutureWarning", "past_key_values", "training reward model"):
        assert noise not in out
    assert len(out.splitlines()) < 400


def test_report_states_verdicts_only_with_intervals_and_draws_bands(two_seeds):
    seeds_dir, _ = two_seeds
    results = json.loads((seeds_dir / "results.json").read_text())
    files = write_report(results, seeds_dir)
    first = files["markdown"].read_text()
    files["markdown"].unlink()
    assert main(["demo", "--redraw", "--output", str(seeds_dir)]) == 0  # the same report again from results.json
    assert files["markdown"].read_text() == first
    markdown = files["markdown"].read_text()
    for text in ("Bayes ceiling", "length-only rule", "noise-free labeller utility", "Mechanism controls",
                 "held out (leave-one-point-out)", "fitted peak", "observed peak", "Seeds 0, 1", "At matched KL"):
        assert text in markdown
    assert "not resolved at this sample size" in markdown  # two tiny seeds cannot resolve everything
    assert "<table>" in files["html"].read_text()
    for name in ("best_of_n", "ppo", "ppo_features", "reward_models", "controls"):
        with Image.open(files[name]) as image:
            assert image.format == "PNG" and image.size[0] > 400
        assert f"plots/{files[name].name}" in markdown


@pytest.mark.parametrize("argv, message", [
    (["demo", "--seeds", "1", "1"], "each seed once"),
    (["demo", "--output", "{file}"], "is a file"),
    (["demo", "--workers", "0"], "--workers must be at least 1"),
    (["demo", "--redraw", "--output", "{dir}"], "results.json not found"),
])
def test_bad_demo_options_get_one_line(argv, message, tmp_path, capsys):
    file = tmp_path / "taken"
    file.write_text("")
    assert main([arg.replace("{file}", str(file)).replace("{dir}", str(tmp_path)) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rewardkit: error:") and message in err and len(err.strip().splitlines()) == 1
