"""`rewardkit eval` end to end: several datasets in one call, the printed table, --output JSON and --report."""

from __future__ import annotations

import argparse
import json

import matplotlib.image
import pytest

from rewardkit.evaluation.cli import add_eval_parser
from tests.conftest import assert_one_line_error, ranking_records, run_rewardkit, write_jsonl

SECTIONS = "Style: [length bias, concreteness]\nInstructions: [nested_instruction, content_continuation]\n"


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="rewardkit")
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", *map(str, argv)])
    return args.handler(args)


def eval_cli(capsys, *argv) -> tuple[int, str, str]:
    return run_rewardkit(capsys, "eval", *argv)


@pytest.fixture(scope="module")
def evaluated(length_models, shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-cli")
    rankings = write_jsonl(root / "rankings.jsonl", ranking_records(12, k=4))
    sources = [length_models["test"], shared_data / "evalbiasbench" / "biasbench.json", rankings]
    (root / "sections.yaml").write_text(SECTIONS)
    code = run("--model", length_models["alpaca"], "--data", *sources, "--report", root / "report",
               "--output", root / "metrics.json", "--calibrate-fraction", "0.3", "--bootstrap", "200",
               "--sections", root / "sections.yaml")
    assert code == 0
    return root, [str(s) for s in sources]


def test_eval_writes_json_with_every_metric_per_dataset(evaluated, capsys):
    root, (test, biasbench, rankings) = evaluated
    metrics = json.loads((root / "metrics.json").read_text())
    assert list(metrics) == [test, biasbench, rankings]
    # The keys the plain `eval` always wrote are still there.
    for m in metrics.values():
        assert {"accuracy", "mean_margin", "num_comparisons", "num_tied_labels", "truncated"} <= set(m)
        assert m["accuracy_ci"]["low"] <= m["accuracy"] <= m["accuracy_ci"]["high"]
        assert m["calibration"]["temperature"] > 0 and m["calibration"]["after"]["num_comparisons"] > 0
    assert metrics[test]["num_comparisons"] == 200
    # EvalBiasBench's six bias types are subsets; two sections from --sections, the other two subsets on their own.
    subsets, sections = metrics[biasbench]["subsets"], metrics[biasbench]["sections"]
    assert len(subsets) == 6 and sum(s["num_prompts"] for s in subsets.values()) == 80
    assert set(sections) == {"Style", "Instructions", "empty reference", "familiar knowledge preference bias"}
    style = [subsets[name] for name in ("length bias", "concreteness")]
    assert sections["Style"] == pytest.approx(
        sum(s["accuracy"] * s["num_prompts"] for s in style) / sum(s["num_prompts"] for s in style))
    assert metrics[biasbench]["overall"] == pytest.approx(sum(sections.values()) / 4)
    assert metrics[rankings]["ranking"]["num_groups"] == 12 and metrics[rankings]["num_comparisons"] == 12 * 6
    assert json.loads((root / "report" / "metrics.json").read_text()) == metrics


def test_eval_report_has_markdown_html_and_real_pngs(evaluated):
    root, _ = evaluated
    report = root / "report"
    markdown, html = (report / "report.md").read_text(), (report / "report.html").read_text()
    assert "Reward model evaluation" in markdown and "length-only" in markdown and "<table>" in html
    assert "| section | score |" in markdown and "| Style |" in markdown  # --sections given
    pngs = sorted((report / "plots").glob("*.png"))
    # accuracy + per dataset reliability and length + subsets for EvalBiasBench
    assert len(pngs) == 1 + 2 * 3 + 1
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, _ = matplotlib.image.imread(png).shape
        assert height > 100 and width > 100
        assert f"plots/{png.name}" in markdown and f"plots/{png.name}" in html


def test_eval_prints_a_table_and_turns_mistakes_into_one_line_errors(length_models, tmp_path, capsys):
    code, printed, _ = eval_cli(capsys, "--model", length_models["alpaca"], "--data", length_models["test"],
                                "--bootstrap", "50", "--calibrate-on", length_models["test"])
    assert code == 0
    assert "accuracy" in printed and "95% CI" in printed and str(length_models["test"]) in printed
    (tmp_path / "sections.yaml").write_text("- not a mapping\n")
    mistakes = {
        ("--format", "nope"): "argument --format: invalid choice: 'nope'",
        ("--sections", tmp_path / "sections.yaml"): "expected a mapping of section name",
        ("--calibrate-fraction", "1.5"): "--calibrate-fraction must be in (0, 1) (got 1.5)",
        ("--bootstrap", "0"): "--bootstrap must be >= 1 (got 0)",
        ("--limit", "x"): "--limit expects an integer (got 'x')",
    }
    for extra, message in mistakes.items():
        code, _, err = eval_cli(capsys, "--model", length_models["alpaca"], "--data", length_models["test"], *extra)
        assert_one_line_error(code, err, message)


def test_accuracy_plot_names_every_dataset_in_full_and_keeps_the_legend_off_the_intervals(evaluated):
    from rewardkit.evaluation.plots import accuracy_figure

    root, sources = evaluated
    metrics = json.loads((root / "metrics.json").read_text())
    long_name = "/a/long/folder/name/that/used/to/be/cut/short/" + "x" * 40 + ".jsonl"
    metrics[long_name] = metrics[sources[0]]
    figure = accuracy_figure(metrics)
    axes = figure.axes[0]
    assert [label.get_text() for label in axes.get_yticklabels()] == list(metrics)
    renderer = figure.canvas.get_renderer()
    legend = axes.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(axes.get_window_extent(renderer))  # beside the axes: it covers no error bar
