"""Step-labelled data: ProcessBench, PRM800K and Math-Shepherd records, their labels, and errors that say where."""

from __future__ import annotations

import pytest

from rewardkit.data import load_preferences
from rewardkit.data.errors import DataError
from rewardkit.data.step_formats import detect_step_format, is_step_data, load_steps
from rewardkit.data.steps import STEP_SEPARATOR, render_steps, split_steps
from tests.conftest import keyword_pairs, write_jsonl

PRM800K_RECORD = {  # the layout of PRM800K's phase2 files, shortened
    "labeler": "x", "is_quality_control_question": False,
    "question": {"problem": "What is 1 + 2 + 3?", "ground_truth_answer": "6"},
    "label": {
        "steps": [
            {"completions": [{"text": "1 + 2 = 3.", "rating": 1, "flagged": False}], "human_completion": None,
             "chosen_completion": 0},
            {"completions": [{"text": "3 + 3 = 6.", "rating": 0}, {"text": "3 + 3 = 7.", "rating": -1}],
             "human_completion": None, "chosen_completion": 0},
            {"completions": [{"text": "So it is 6.", "rating": 1}, {"text": "So it is 9.", "rating": -1}],
             "human_completion": None, "chosen_completion": None},
        ],
        "finish_reason": "found_error",
    },
}


def test_processbench_real_files_load_with_first_error_labels(shared_data):
    for subset, solutions, erroneous in (("gsm8k", 400, 207), ("math", 1000, 594)):
        dataset = load_steps(shared_data / "processbench" / f"{subset}.json")
        all_solutions = [s for g in dataset.groups for s in g.solutions]
        assert len(all_solutions) == solutions and dataset.report.records_read == solutions
        assert sum(s.first_error >= 0 for s in all_solutions) == erroneous
        for solution in all_solutions:
            k, n = solution.first_error, len(solution.steps)
            expected = [1.0] * n if k == -1 else [1.0] * k + [0.0] + [None] * (n - k - 1)
            assert solution.labels == expected
        assert len(dataset) < solutions  # a few problems have several solutions: grouped together
        assert "labelled steps" in dataset.report.summary()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": "one step"}, "field 'steps': expected a list of step texts, got str"),
        ({"steps": ["a", "  "]}, "field 'steps[1]': empty step"),
        ({"label": 2}, "field 'label': 2 is out of range (expected -1 or a step index 0..1)"),
        ({"label": "0"}, "field 'label': expected the index of the first wrong step"),
        ({"steps": [f"a{STEP_SEPARATOR}", "b"]}, "field 'steps[0]': contains the step separator"),
    ],
)
def test_bad_processbench_records_name_file_line_and_field(tmp_path, change, message):
    good = {"problem": "1 + 1?", "steps": ["1 + 1 = 2.", "The answer is 2."], "label": -1}
    path = write_jsonl(tmp_path / "steps.jsonl", [good, {**good, **change}])
    with pytest.raises(DataError) as error:
        load_steps(path)
    assert str(error.value).startswith(f"{path} line 2, field ")
    assert message in str(error.value)
    skipped = load_steps(path, on_error="skip")
    assert skipped.num_solutions == 1 and skipped.report.num_skipped == 1


def test_prm800k_records_follow_the_chosen_path_up_to_the_first_error(tmp_path):
    path = write_jsonl(tmp_path / "prm800k.jsonl", [PRM800K_RECORD])
    solution = load_steps(path).groups[0].solutions[0]
    # Step 3 had no chosen completion: the path ends there, at the completion rated -1.
    assert solution.steps == ["1 + 2 = 3.", "3 + 3 = 6.", "So it is 9."]
    assert solution.labels == [1.0, 1.0, 0.0] and solution.first_error == 2
    assert detect_step_format(PRM800K_RECORD) == "prm800k"


@pytest.mark.parametrize(
    ("neutral", "labels", "first_error"),
    [("positive", [1.0, 1.0, 0.0, None], 2), ("negative", [1.0, 0.0, None, None], 1),
     ("ignore", [1.0, None, 0.0, None], 2)],
)
def test_prm800k_ratings_and_the_neutral_policy(tmp_path, neutral, labels, first_error):
    record = {"problem": "p", "steps": ["a", "b", "c", "d"], "ratings": [1, 0, -1, 1]}
    solution = load_steps(write_jsonl(tmp_path / "r.jsonl", [record]), neutral=neutral).groups[0].solutions[0]
    assert solution.labels == labels and solution.first_error == first_error


def test_prm800k_bad_rating_is_named(tmp_path):
    record = {"problem": "p", "steps": ["a", "b"], "ratings": [1, 2]}
    with pytest.raises(DataError, match=r"line 1, field 'ratings\[1\]': 2 is not a PRM800K rating"):
        load_steps(write_jsonl(tmp_path / "r.jsonl", [record]))


def test_math_shepherd_soft_labels_and_the_tagged_release_format(tmp_path):
    soft = {"prompt": "p", "steps": ["a", "b", "c"], "step_labels": [0.75, None, 0.0]}
    tagged = {"input": "What is 2 + 3? Step 1: 2 + 3 = 5. ки\nStep 2: The answer is 6. ки",
              "label": "What is 2 + 3? Step 1: 2 + 3 = 5. +\nStep 2: The answer is 6. -"}
    dataset = load_steps(write_jsonl(tmp_path / "ms.jsonl", [soft, tagged]))
    assert dataset.groups[0].solutions[0].labels == [0.75, None, 0.0]
    problem, solution = dataset.groups[1].prompt, dataset.groups[1].solutions[0]
    assert problem == "What is 2 + 3?" and solution.steps == ["Step 1: 2 + 3 = 5.", "Step 2: The answer is 6."]
    assert solution.labels == [1.0, 0.0]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{**soft, "step_labels": [0.5, 1.5, 0.0]}])
    with pytest.raises(DataError, match=r"field 'step_labels\[1\]': 1.5 is out of range"):
        load_steps(bad)
    short = write_jsonl(tmp_path / "short.jsonl", [{**soft, "step_labels": [0.5]}])
    with pytest.raises(DataError, match="field 'step_labels': has 1 labels for 3 steps"):
        load_steps(short)


def test_outcome_data_is_not_step_data_and_loads_unchanged(tmp_path, shared_data):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", keyword_pairs(3))
    assert not is_step_data(pairs) and is_step_data(shared_data / "processbench" / "gsm8k.json")
    assert load_preferences(pairs).num_comparisons == 3
    with pytest.raises(DataError, match="line 1: is not step data"):
        load_steps(pairs)


def test_split_keeps_a_problem_on_one_side_and_rendering_marks_each_step(tmp_path):
    records = [{"problem": f"p{i % 5}", "steps": [f"s{i}"], "label": -1} for i in range(20)]
    dataset = load_steps(write_jsonl(tmp_path / "s.jsonl", records))
    train, held_out = split_steps(dataset, 0.4, seed=0)
    assert len(train) == 3 and len(held_out) == 2
    assert {g.prompt for g in train.groups}.isdisjoint(g.prompt for g in held_out.groups)
    assert split_steps(dataset, 0.4, seed=0)[1].groups == held_out.groups  # seeded
    text, ends = render_steps(["a b", "c"])
    assert text == f"a b{STEP_SEPARATOR}\nc{STEP_SEPARATOR}" and [text[e] for e in ends] == [">", ">"]
    assert render_steps(["a b ", "c"], separator=None) == ("a b \nc", [2, 5])  # a step's last non-space
