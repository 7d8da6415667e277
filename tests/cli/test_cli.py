"""The command line as a user meets it: train -> score -> eval end to end, every data-reading command on real HH-RLHF
records (empty replies included), and one `rewardkit: error: ...` line with exit status 2 for every mistake."""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rewardkit.cli_options import ArgumentParser, run
from tests.conftest import assert_one_line_error, keyword_pairs, ranking_records, run_rewardkit, write_jsonl


@pytest.fixture(scope="module")
def trained(tiny_sft, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_jsonl(root / "pairs.jsonl", keyword_pairs(48))
    config = root / "train.yaml"
    config.write_text("batch_size: 4\nlearning_rate: 3.0e-3\neval_fraction: 0.25\nlogging_steps: 5\n")
    from rewardkit.cli import main

    code = main([
        "train", "--model", str(tiny_sft), "--data", str(data), "--output", str(root / "rm"),
        "--max-steps", "20", "--max-length", "128", "--config", str(config), "--no-progress",
    ])
    assert code == 0
    return root


@pytest.fixture(scope="module")
def hh_head(shared_data, tmp_path_factory) -> Path:
    """The first 80 HH-RLHF harmless records; line 66 is a pair whose chosen reply is empty."""
    with gzip.open(shared_data / "hh-rlhf-harmless" / "pairs.jsonl.gz", "rt") as file:
        lines = [next(file) for _ in range(80)]
    assert json.loads(lines[65])["chosen"].endswith("\n\nAssistant: ")
    path = tmp_path_factory.mktemp("hh") / "hh-head.jsonl"
    path.write_text("".join(lines))
    return path


def test_train_writes_a_model_and_respects_the_config_file(trained):
    summary = json.loads((trained / "rm" / "train_summary.json").read_text())
    assert summary["steps"] == 20
    assert summary["eval_comparisons"] == 12  # eval_fraction 0.25 of 48 pairs came from the YAML file
    assert summary["eval"]["accuracy"] >= 0.9 and summary["warnings"] == []


def test_score_writes_one_line_per_response(trained, capsys):
    items = [{"prompt": "Human: bread?\n\nAssistant:", "response": r} for r in (" yes please", " no thanks")]
    write_jsonl(trained / "to_score.jsonl", items)
    code, out, err = run_rewardkit(capsys, "score", "--model", trained / "rm", "--data", trained / "to_score.jsonl",
                                   "--output", trained / "scores.jsonl")
    assert code == 0
    lines = [json.loads(line) for line in (trained / "scores.jsonl").read_text().splitlines()]
    assert [line["response"] for line in lines] == [" yes please", " no thanks"]
    assert lines[0]["reward"] > lines[1]["reward"]
    assert lines[0]["truncated"] is False
    assert "scored 2 responses" in out
    assert "scoring: 2/2 sequences in" in err and "\r" not in err  # the progress bar, on stderr: plain lines
    # Preference data is accepted too: every response of every pair is scored, in order.
    code, out, err = run_rewardkit(capsys, "score", "--model", trained / "rm", "--data", trained / "pairs.jsonl",
                                   "--raw", "--no-progress")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 96 and [o["response_index"] for o in rows[:4]] == [0, 1, 0, 1]
    assert "scoring" not in err


def test_eval_prints_a_table_and_writes_json(trained, capsys):
    code, out, err = run_rewardkit(capsys, "eval", "--model", trained / "rm", "--data", trained / "pairs.jsonl",
                                   "--output", trained / "eval.json")
    assert code == 0
    assert "accuracy" in out and str(trained / "pairs.jsonl") in out
    assert "scoring pairs.jsonl: 96/96 sequences in" in err  # the bar is named by the dataset it scores
    metrics = json.loads((trained / "eval.json").read_text())[str(trained / "pairs.jsonl")]
    assert metrics["num_comparisons"] == 48 and metrics["accuracy"] >= 0.9


def test_eval_prints_whole_names_and_ranking_metrics_without_blank_lines(trained, tmp_path, capsys):
    deep = tmp_path / "a-folder-with-a-long-name" / "and-another-one-below-it"
    deep.mkdir(parents=True)
    rankings = write_jsonl(deep / "k-wise-rankings-with-a-long-file-name.jsonl", ranking_records(8, k=4))
    code, out, _ = run_rewardkit(capsys, "eval", "--model", trained / "rm", "--data", trained / "pairs.jsonl",
                                 rankings, "--bootstrap", "50", "--no-progress")
    assert code == 0
    lines = out.splitlines()
    assert all(line.strip() for line in lines)
    header = lines[0].split()
    assert header[-2:] == ["top-1", "tau"]
    ranking_row = next(line for line in lines if line.startswith(str(rankings)))  # the whole path, not cut
    top1, tau = ranking_row.split()[-2:]
    assert 0 <= float(top1) <= 1 and -1 <= float(tau) <= 1
    pairs_row = next(line for line in lines if line.startswith(str(trained / "pairs.jsonl")))
    assert pairs_row.split()[-2:] == ["-", "-"]  # pairs have no ranking of K >= 3


def test_every_data_command_reads_hh_rlhf_and_keeps_its_empty_replies(trained, hh_head, tiny_sft, capsys, caplog):
    """score, eval, audit, ensemble train/score/eval, dpo score/eval and train all read the HH records, the
    empty chosen reply of line 66 included (kept, and counted in the load report)."""
    rm, common = trained / "rm", ["--max-length", "64"]
    caplog.set_level(logging.INFO, logger="rewardkit")
    runs = {
        "score": ["score", "--model", rm, "--data", hh_head, "--output", trained / "hh-scores.jsonl"],
        "eval": ["eval", "--model", rm, "--data", hh_head, "--bootstrap", "20"],
        "audit": ["audit", "--model", rm, "--data", hh_head, "--probes", "length-filler", "--limit", "20"],
        "ensemble train": ["ensemble", "train", "--model", tiny_sft, "--data", hh_head, "--output", trained / "ens",
                           "--members", "2", "--max-steps", "2", "--no-progress"],
        "ensemble score": ["ensemble", "score", "--model", trained / "ens", "--data", hh_head],
        "ensemble eval": ["ensemble", "eval", "--model", trained / "ens", "--data", hh_head],
        "dpo score": ["dpo", "score", "--policy", tiny_sft, "--data", hh_head],
        "dpo eval": ["dpo", "eval", "--policy", tiny_sft, "--ref", tiny_sft, "--data", hh_head],
        "train": ["train", "--model", tiny_sft, "--data", hh_head, "--output", trained / "hh-rm", "--max-steps", "2",
                  "--no-progress"],
    }
    for name, argv in runs.items():
        caplog.clear()
        code, out, err = run_rewardkit(capsys, *argv, *common)
        assert code == 0, (name, err)
        assert "1 empty responses (kept" in caplog.text, name
    scored = [json.loads(line) for line in (trained / "hh-scores.jsonl").read_text().splitlines()]
    assert len(scored) == 160 and not scored[2 * 65]["response"].strip()  # line 66's chosen reply, scored
    assert isinstance(scored[2 * 65]["reward"], float)


def test_columns_option_reads_a_file_with_its_own_column_names(trained, tmp_path, capsys):
    rows = keyword_pairs(12)
    csv_path = tmp_path / "qa.csv"
    csv_path.write_text("question,good,bad\n" + "".join(
        f'"{r["prompt"]}","{r["chosen"]}","{r["rejected"]}"\n' for r in rows))
    code, _, err = run_rewardkit(capsys, "eval", "--model", trained / "rm", "--data", csv_path)
    assert_one_line_error(code, err, f"{csv_path} line 2: cannot tell the format",
                          "--columns prompt=question,chosen=good,rejected=bad")
    code, out, _ = run_rewardkit(capsys, "eval", "--model", trained / "rm", "--data", csv_path, "--columns",
                                 "prompt=question,chosen=good,rejected=bad", "--bootstrap", "20")
    assert code == 0 and str(csv_path) in out
    code, out, _ = run_rewardkit(capsys, "score", "--model", trained / "rm", "--data", csv_path, "--columns",
                                 "prompt=question,response=good")
    scored = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [s["response"] for s in scored] == [r["chosen"] for r in rows]


def test_training_that_learns_nothing_warns_and_floors_the_scale(tiny_sft, tmp_path, caplog):
    from rewardkit.training import TrainConfig, train
    from rewardkit.training.objectives import MIN_REWARD_SCALE

    def flatten_head(step, metrics, model):  # the head outputs a constant: rewards cannot differ
        head = model.hf_model.score
        head.weight.data.zero_()

    data = write_jsonl(tmp_path / "pairs.jsonl", keyword_pairs(40))
    with caplog.at_level(logging.WARNING, logger="rewardkit"):
        result = train(TrainConfig(model=str(tiny_sft), data=[str(data)], output_dir=str(tmp_path / "rm"),
                                   max_steps=2, max_length=64, eval_fraction=0.25, progress_bar=False),
                       callbacks=[flatten_head])
    assert result.model.normalization[1] == MIN_REWARD_SCALE  # not 1e-8 blown up to unit spread
    assert "not above chance" in caplog.text and "the rewards barely differ" in caplog.text
    assert len(result.summary["warnings"]) == 2


def test_cli_training_at_chance_warns(trained, tiny_sft, tmp_path, capsys, caplog):
    with caplog.at_level(logging.WARNING, logger="rewardkit"):
        code, out, _ = run_rewardkit(capsys, "train", "--model", tiny_sft, "--data", trained / "pairs.jsonl",
                                     "--output", tmp_path / "rm", "--max-steps", "1", "--lr", "1e-9",
                                     "--max-length", "64", "--no-progress")
    assert code == 0 and "trained 1 steps" in out
    assert "is not above chance (95% interval" in caplog.text


def _cli(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real command, in a fresh process."""
    return subprocess.run([sys.executable, "-m", "rewardkit", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_user_mistakes_are_one_line_errors(trained, tiny_sft, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"},
                                               {"prompt": "p", "chosen": 5, "rejected": "b"}])
    (tmp_path / "bad-steps.yaml").write_text("max_steps: -1\n")
    (tmp_path / "bad-type.yaml").write_text("batch_size: eight\n")
    (tmp_path / "a-file").write_text("")
    rm, data, no_hub = trained / "rm", trained / "pairs.jsonl", {"HF_HUB_OFFLINE": ""}
    cases = [
        (["score", "--model", rm, "--data", data, "--format", "bogus"], {}, "--format: invalid choice: 'bogus'"),
        (["dpo", "score", "--policy", tiny_sft, "--data", data, "--format", "bogus"], {}, "invalid choice: 'bogus'"),
        (["score", "--model", rm, "--data", data, "--output", "/nonexistent/dir/x.jsonl"], {},
         "--output /nonexistent/dir/x.jsonl: directory /nonexistent/dir does not exist"),
        (["eval", "--model", rm, "--data", data, "--output", tmp_path], {}, "is a directory; expected a file name"),
        (["eval", "--model", rm, "--data", data, "--report", tmp_path / "a-file"], {}, "is a file; expected a dir"),
        (["dpo", "eval", "--policy", "./runs/no-such-dir", "--data", data], {}, "--policy ./runs/no-such-dir: no such"),
        (["dpo", "eval", "--policy", "no-such-dir", "--data", data], {"HF_HUB_OFFLINE": "1"},
         "--policy no-such-dir: no such local directory; HF_HUB_OFFLINE=1 is set"),
        (["train", "--model", tiny_sft, "--data", data, "--max-steps", "-1"], {}, "--max-steps must be >= 1 (got -1)"),
        (["train", "--model", tiny_sft, "--data", data, "--config", tmp_path / "bad-steps.yaml"], {},
         "--max-steps must be >= 1 (got -1)"),
        (["train", "--model", tiny_sft, "--data", data, "--lr", "fast"], {}, "--lr expects a number (got 'fast')"),
        (["train", "--model", tiny_sft, "--data", data, "--config", tmp_path / "bad-type.yaml"], {},
         "--batch-size expects an integer (got 'eight')"),
        (["train", "--model", tiny_sft, "--data", data, "--eval-fraction", "1"], {},
         "--eval-fraction must be in [0, 1) (got 1)"),
        (["ensemble", "train", "--model", tiny_sft, "--data", data, "--members", "0"], {},
         "--members must be >= 1 (got 0)"),
        (["score", "--model", rm, "--data", data, "--max-length", "4"], {}, "--max-length must be >= 8 (got 4)"),
        (["score", "--model", rm, "--data", data, "--columns", "prompt"], {}, "--columns expects FIELD=COLUMN"),
        (["eval", "--model", rm, "--data", data, "--columns", "chosen=answer"], {},
         "field 'answer': missing (mapped to 'chosen' by --columns"),
        (["eval", "--model", rm, "--data", tmp_path / "missing.jsonl"], {}, "missing.jsonl: no such file"),
        (["eval", "--model", rm, "--data", bad], {}, "bad.jsonl line 2, field 'chosen'"),
        # The data is read before the model loads: a directory that holds no model is never reached.
        (["eval", "--model", tmp_path, "--data", bad], {}, "bad.jsonl line 2, field 'chosen'"),
        (["score", "--model", tmp_path / "no-model", "--data", data], {}, "no-model: no such directory"),
        (["audit", "--model", rm, "--data", data, "--probes", "nope"], {}, "unknown probe 'nope'"),
        (["audit", "--model", rm, "--data", data, "--threshold", "1.5"], {}, "--threshold must be in (0, 1)"),
        (["dpo", "score", "--policy", tiny_sft, "--data", data, "--mode", "reference"], {}, "needs --ref"),
        (["eval", "--model", rm, "--data", data, "--calibrate-fraction", "0.3", "--calibrate-on", data], {},
         "not allowed with argument"),
        (["ensemble", "eval", "--model", rm, "--data", data, "--bootstrap", "200"], {},
         "unrecognized arguments: --bootstrap 200 (see `rewardkit ensemble eval --help`)"),
        (["serve", "--model", rm, "--port", "-1"], {}, "--port must be in [0, 65535] (got -1)"),
        (["serve", "--model", rm, "--api-key-file", tmp_path], {}, "is a directory; give the file that holds the key"),
        (["label", "serve", "--port", "70000"], {}, "--port must be in [0, 65535] (got 70000)"),
        (["label", "stats", "--project", "p", "--output", "/nonexistent/dir/s.json"], {},
         "directory /nonexistent/dir does not exist"),
        (["label", "prioritize", "--project", "p", "--ensemble", rm, "--batch-size", "0"], {},
         "--batch-size must be >= 1 (got 0)"),
    ]
    for args, env, expected in cases:
        result = _cli(*args, env=env)
        assert "Traceback" not in result.stderr, args
        assert_one_line_error(result.returncode, result.stderr, expected)
    # Skipping every record leaves nothing: the first skipped record of each reason is shown, then the error.
    result = _cli("score", "--model", rm, "--data", bad, "--format", "ranking", "--skip-bad-records")
    *warnings, last = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "nothing to score" in last and last.startswith("rewardkit: error:")
    assert len(warnings) == 1 and "skipping bad record" in warnings[0] and "line 1, field 'responses'" in warnings[0]
    # The hub is named as where a model id would come from; HF_HUB_OFFLINE only when it is set.
    result = _cli("score", "--model", "no-such-owner/no-such-model", "--data", data, env=no_hub)
    assert_one_line_error(result.returncode, result.stderr, "no-such-owner/no-such-model", "no such local directory")
    assert "HF_HUB_OFFLINE" not in result.stderr
    result = _cli("dpo", "eval", "--policy", "no-such-dir", "--data", data, env=no_hub)
    assert_one_line_error(result.returncode, result.stderr, "no-such-dir", "no such local directory")
    assert "HF_HUB_OFFLINE" not in result.stderr and "Repo id" not in result.stderr


def test_help_is_complete_for_every_command():
    for command, flags in {
        "train": ["--model", "--data", "--output", "--eval-data", "--max-length", "--max-steps", "--epochs",
                  "--batch-size", "--lr", "--seed", "--config", "--resume", "--skip-bad-records", "--lora-rank",
                  "--format", "--columns"],
        "score": ["--model", "--data", "--output", "--raw", "--format", "--skip-bad-records", "--max-length",
                  "--columns"],
        "eval": ["--model", "--data", "--output", "--format", "--skip-bad-records", "--max-length", "--columns"],
    }.items():
        result = _cli(command, "--help")
        assert result.returncode == 0
        for flag in flags:
            assert flag in result.stdout, (command, flag)


def test_mistakes_are_reported_before_torch_is_imported(trained, tmp_path):
    """Options, output paths, model paths and the data are checked before any model code is imported."""
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "chosen": 5, "rejected": "b"}])
    rm, data = str(trained / "rm"), str(trained / "pairs.jsonl")
    mistakes = [
        ["score", "--model", rm, "--data", data, "--output", "/nonexistent/dir/x.jsonl"],
        ["score", "--model", rm, "--data", str(bad)],
        ["eval", "--model", rm, "--data", str(bad), "--report", str(tmp_path / "report")],
        ["eval", "--model", rm, "--data", data, "--sections", str(tmp_path / "none.yaml")],
        ["audit", "--model", rm, "--data", str(bad)],
        ["dpo", "eval", "--policy", "./no/such/policy", "--data", data],
        ["ensemble", "score", "--model", rm, "--data", str(bad)],
        ["train", "--model", rm, "--data", data, "--output", str(bad)],
        ["train", "--model", rm, "--data", data, "--config", str(tmp_path / "none.yaml")],
    ]
    script = (
        "import json, sys\n"
        "from rewardkit.cli import main\n"
        f"codes = [main(argv) for argv in {mistakes!r}]\n"
        "print(json.dumps([codes, sorted(m for m in ('torch', 'transformers') if m in sys.modules)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    codes, imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert codes == [2] * len(mistakes) and imported == [], result.stderr


HEAVY_MODULES = ("torch", "transformers", "asyncio", "uvicorn", "starlette", "sqlalchemy", "alembic", "matplotlib")


def test_help_and_version_answer_without_torch_or_transformers():
    """Every command's --help (serve and label's sub-commands included, also through `python -m rewardkit.serving`
    and `python -m rewardkit.label`), and --version, run without importing torch, transformers, the server or the
    database libraries (they load only when a command runs), so they answer at once."""
    script = (
        "import json, sys\n"
        "from rewardkit.cli import command_paths, main\n"
        "from rewardkit.label.cli import main as label_main\n"
        "from rewardkit.serving.cli import main as serve_main\n"
        "runs = [(main, ['--version']), (main, ['--help']), *((main, [*path, '--help']) for path in command_paths()),\n"
        "        (serve_main, ['--help']), (label_main, ['--help']), (label_main, ['serve', '--help'])]\n"
        "for run, argv in runs:\n"
        "    try:\n"
        "        run(argv)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, argv\n"
        f"heavy = sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)\n"
        "print(json.dumps([command_paths(), heavy]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    paths, imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert imported == []
    assert {"serve", "label serve", "label generate", "label prioritize", "ensemble eval", "dpo score"} <= {
        " ".join(path) for path in paths}


def test_accelerates_info_lines_stay_out_of_a_commands_output():
    parser = ArgumentParser()
    parser.set_defaults(handler=lambda args: 0)
    assert run(parser, []) == 0
    # its checkpoint lines ("[RANK 0] Saving current state to ...") would otherwise print as "rewardkit: ..."
    assert logging.getLogger("accelerate.checkpointing").getEffectiveLevel() == logging.WARNING
