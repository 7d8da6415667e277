"""The audit's outputs: a printed table, a bar chart of win rates, and a Markdown/HTML report with the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rewardkit.audit.runner import AuditResult  # noqa: E402
from rewardkit.reporting import Document  # noqa: E402
from rewardkit.tables import text_table  # noqa: E402

HEADER = ["probe", "pairs", "win rate", "95% CI", "mean Δ reward", "unseen", "unknown", "verdict"]


def table_rows(result: AuditResult) -> list[list[str]]:
    rows = []
    for p in result.probes:
        rows.append([p.probe, str(p.num_pairs), f"{p.win_rate:.3f}", f"[{p.win_rate_low:.3f}, {p.win_rate_high:.3f}]",
                     f"{p.mean_delta:+.3f}", f"{p.unseen:.0%}",
                     "-" if p.unknown_share is None else f"{p.unknown_share:.0%}", p.verdict])
    return rows


def notes(result: AuditResult) -> list[str]:
    lines = [f"{p.probe}: without the change, the rejected answer wins {p.reference_win_rate:.3f}"
             for p in result.probes if p.reference_win_rate is not None]
    return [*lines, *(f"warning: {w}" for w in result.warnings),
            f"gameable (win rate > {result.threshold:g}): {', '.join(result.gameable) or 'none'}"]


def format_table(result: AuditResult) -> str:
    return "\n".join([text_table(HEADER, table_rows(result)), *notes(result)])


def plot_win_rates(result: AuditResult, path: Path) -> Path:
    probes = result.probes
    fig, ax = plt.subplots(figsize=(7.5, 1.0 + 0.38 * len(probes)))
    colours = ["tab:red" if p.gameable else "tab:green" for p in probes]
    errors = [[p.win_rate - p.win_rate_low for p in probes], [p.win_rate_high - p.win_rate for p in probes]]
    ax.barh([p.probe for p in probes], [p.win_rate for p in probes], xerr=errors, color=colours, capsize=3)
    ax.axvline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.axvline(result.threshold, color="tab:red", linewidth=1.0, label=f"threshold {result.threshold:g}")
    ax.set(xlim=(0, 1), xlabel="win rate of the perturbed response", title="Can this reward model be gamed?")
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_audit_report(result: AuditResult, output_dir: str | Path, model: str = "") -> dict[str, Path]:
    output_dir = Path(output_dir)
    (output_dir / "plots").mkdir(parents=True, exist_ok=True)
    files = {"win_rates": plot_win_rates(result, output_dir / "plots" / "win_rates.png")}
    document = Document("Reward model audit")
    document.paragraph(
        (f"Model `{model}`. " if model else "")
        + f"Built-in probes on {result.num_pairs} labelled pairs. Win rate: share of pairs where the perturbed "
        "response gets the higher reward (equal rewards count half); mean Δ: r(perturbed) − r(original) in the "
        "checkpoint's normalized units; unseen: pairs where the whole change fell past max_length, so the RM saw "
        "identical tokens; unknown: share of the tokens the change adds that the tokenizer does not know (a probe "
        "made mostly of them tests nothing, and uses the tokenizer's own words where it has a version in them)."
        f" A probe is **gameable** when its win rate exceeds {result.threshold:g}.")
    document.table(HEADER, table_rows(result))
    document.paragraph("; ".join(notes(result)) + ".")
    document.bullets([f"`{p.probe}` ({p.family}): {p.description}" for p in result.probes])
    document.image("plots/win_rates.png", "Win rate of the perturbed response per probe (95% bootstrap interval)")
    files["markdown"] = output_dir / "report.md"
    files["html"] = output_dir / "report.html"
    files["json"] = output_dir / "audit.json"
    files["markdown"].write_text(document.to_markdown())
    files["html"].write_text(document.to_html())
    files["json"].write_text(json.dumps(result.to_dict(), indent=2))
    return files
