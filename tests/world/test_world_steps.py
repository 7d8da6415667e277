"""The step world: gold per-step values, labellers with known error rates, and the PRM vs ORM experiment."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rewardkit.experiments.prm import (
    PRMExperimentConfig,
    mean_interval,
    paired_verdict,
    run_prm_experiment,
    train_reward_model,
)
from rewardkit.experiments.prm_cli import write_report
from rewardkit.model import RewardModel
from rewardkit.model.step_metrics import auroc
from rewardkit.rl.prm_search import BeamSearchConfig, prm_best_of_n, solution_scores, step_beam_search
from rewardkit.rl.statistics import NOT_RESOLVED
from rewardkit.world.policy import SFTConfig, save_policy, train_sft_policy
from rewardkit.world.steps import (
    DELIMITER,
    StepLabeller,
    StepWorld,
    join_steps,
    split_solution,
    step_tokenizer,
)

TINY_SFT = SFTConfig(hidden_size=32, intermediate_size=64, num_layers=1, steps=40, num_demonstrations=1000,
                     max_new_tokens=24)


def test_gold_step_values_and_answers():
    world = StepWorld()
    prompt = "add 3 5 2"
    right = world.solution(prompt)
    assert right == ["3 + 5 = 8", "8 + 2 = 10", "answer 10"]
    assert world.first_error(prompt, right) == -1 and world.step_values(prompt, right) == [1.0, 1.0, 1.0]
    slipped = ["3 + 5 = 9", "9 + 2 = 11", "answer 11"]
    assert world.first_error(prompt, slipped) == 0 and world.step_values(prompt, slipped) == [0.0, 0.0, 0.0]
    assert world.first_error(prompt, right[:2]) == 1  # stopped before the answer: its last step is wrong
    cancelled = ["3 + 5 = 9", "9 + 2 = 10", "answer 10"]  # two slips cancel: right answer, wrong path
    assert world.final_correct(prompt, join_steps(cancelled)) and world.first_error(prompt, cancelled) == 0
    assert split_solution(f"3 + 5 = 8 {DELIMITER} answer 8 {DELIMITER} ") == ["3 + 5 = 8", "answer 8"]
    demos = world.demonstrations(world.prompts(400), seed=0)
    slips = np.mean([world.first_error(p, split_solution(d)) >= 0 for p, d in zip(world.prompts(400), demos,
                                                                                strict=True)])
    assert 0.2 < slips < 0.5  # 2-4 additions, each slipping with probability 0.12


def test_labellers_make_their_stated_errors_and_costs():
    world, rng = StepWorld(), np.random.default_rng(0)
    prompt, right = "add 3 5 2 4", StepWorld().solution("add 3 5 2 4")
    wrong = ["3 + 5 = 8", "8 + 2 = 11", "11 + 4 = 15", "answer 15"]
    labeller = StepLabeller(miss=0.2, false_alarm=0.0, outcome_noise=0.1)
    flagged = [labeller.process_label(world, prompt, wrong, rng) for _ in range(2000)]
    assert np.mean([index == 1 for index, _ in flagged]) == pytest.approx(0.8, abs=0.03)
    assert all(read == index + 1 for index, read in flagged if index >= 0)
    assert labeller.process_label(world, prompt, right, rng) == (-1, 4)
    outcomes = [labeller.outcome_label(world, prompt, right, rng) for _ in range(2000)]
    assert np.mean(outcomes) == pytest.approx(0.9, abs=0.03)


@pytest.fixture(scope="module")
def step_policy(tmp_path_factory):
    world = StepWorld(PRMExperimentConfig().world)  # the experiment's world: its slips are carry slips
    policy, tokenizer = train_sft_policy(world, TINY_SFT, progress=False, tokenizer=step_tokenizer())
    directory = tmp_path_factory.mktemp("step-sft")
    save_policy(policy, tokenizer, world, str(directory))
    return world, policy, tokenizer, directory


def test_beam_search_keeps_the_prm_best_and_best_of_n_picks_the_top_score(step_policy):
    world, policy, tokenizer, directory = step_policy
    torch.manual_seed(0)
    prm = RewardModel.from_sft(directory, process=True)
    prompts = world.prompts(3, "test")
    config = BeamSearchConfig(beam_width=2, expansions=3, max_steps=5, max_step_tokens=8, seed=0)
    beams = step_beam_search(policy, tokenizer, prm, prompts, DELIMITER, config,
                             policy_context=lambda p, steps: f"{p} <sep>" + "".join(f" {s} {DELIMITER}" for s in steps))
    assert len(beams) == 3 and all(beam.steps and all(beam.steps) for beam in beams)
    rescored = solution_scores(prm, prompts, [beam.steps for beam in beams], "min")
    torch.testing.assert_close(rescored, torch.tensor([beam.score for beam in beams], dtype=torch.float64))
    candidates = [[["1 + 1 = 2", "answer 2"], ["1 + 1 = 3", "answer 3"], ["answer 9"]] for _ in prompts]
    best, table = prm_best_of_n(prm, prompts, candidates, "product")
    assert table.shape == (3, 3) and best == table.argmax(dim=1).tolist()


def test_a_prm_trained_as_the_experiment_trains_it_finds_the_slips_on_held_out_solutions(step_policy, tmp_path):
    # The experiment once compared RMs at chance (step AUROC 0.45): slips of 1-2 that a model of the policy's size
    # cannot check, and ~26 optimizer steps. Even the tiny test policy's PRM must rank held-out steps well above 0.5.
    world, _, _, directory = step_policy
    rng = np.random.default_rng(0)

    def labelled(split: str, count: int) -> list[dict]:
        records = []
        for prompt in world.prompts(count, split, seed=3):
            steps = world.solution(prompt, slip_prob=0.3, rng=rng)
            records.append({"problem": prompt, "steps": steps, "label": world.first_error(prompt, steps)})
        return records

    train_records, test_records = labelled("train", 300), labelled("test", 200)
    (tmp_path / "prm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_records))
    recipe = PRMExperimentConfig(rm_steps=200, rm_batch_size=8)
    prm = train_reward_model(recipe, directory, tmp_path / "prm.jsonl", seed=0)
    problems, solutions = [r["problem"] for r in test_records], [r["steps"] for r in test_records]
    rewards = torch.cat(prm.score_steps(problems, solutions, normalize=False).raw_rewards).numpy()
    on_track = np.concatenate([world.step_values(p, s) for p, s in zip(problems, solutions, strict=True)]) == 1.0
    assert 0.2 < on_track.mean() < 0.9
    assert auroc(rewards, on_track) > 0.65


def test_the_prm_experiment_writes_its_report_with_intervals_over_seeds(step_policy, tmp_path):
    config = PRMExperimentConfig(seeds=2, sft=TINY_SFT, budget=60, rm_steps=2, test_prompts=6, samples_per_prompt=4,
                                 rollouts=1, ppo_steps=2, ppo_batch_size=8)
    results = run_prm_experiment(config, tmp_path, progress=False)
    assert [run["seed"] for run in results["runs"]] == [0, 1]
    for run in results["runs"]:
        assert run["labels"]["prm_steps_read"] >= 60 > run["labels"]["prm_steps_read"] - 5  # stops at the budget
        assert run["labels"]["orm_solutions"] == 60
    interval = results["summary"]["best_of_n"]["ORM"][-1]
    assert interval["seeds"] == 2 and interval["low"] <= interval["mean"] <= interval["high"]
    files = write_report(results, tmp_path)
    assert "PRM vs ORM" in files["markdown"].read_text() and (tmp_path / "plots" / "best_of_n.png").is_file()
    ppo = results["summary"]["ppo"]
    assert set(ppo) == {"PRM min", "ORM"} and [row["step"] for row in ppo["ORM"]] == [0, 1]
    assert (tmp_path / "plots" / "ppo.png").is_file() and "unfinished at end" in files["markdown"].read_text()
    assert all(0.0 <= row["unfinished"]["mean"] <= 1.0 for row in ppo["PRM min"])
    assert json.loads((tmp_path / "results.json").read_text())["config"]["budget"] == 60
    assert mean_interval([1.0])["seeds"] == 1


def test_a_verdict_needs_the_paired_difference_interval_to_exclude_zero():
    better, worse = {"per_seed": [0.80, 0.83, 0.81]}, {"per_seed": [0.70, 0.72, 0.69]}
    assert paired_verdict("PRM", better, "ORM", worse).startswith("PRM > ORM")
    assert paired_verdict("ORM", worse, "PRM", better).startswith("ORM < PRM")
    noisy = {"per_seed": [0.90, 0.60, 0.85]}
    assert paired_verdict("PRM", noisy, "ORM", worse).startswith(NOT_RESOLVED)
    assert paired_verdict("PRM", {"per_seed": [0.9]}, "ORM", {"per_seed": [0.1]}).startswith(NOT_RESOLVED)
