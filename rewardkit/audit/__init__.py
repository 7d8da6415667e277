"""Can this reward model be gamed? Perturbation probes (length, format, sycophancy, gibberish) and user pairs.

    from rewardkit.audit import run_audit
    result = run_audit(RewardModel.from_pretrained("rm"), load_preferences("pairs.jsonl"), probes=["length"])
    print(result.gameable)

Names are imported on first use, so `rewardkit audit --help` does not wait for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rewardkit.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_THRESHOLD": "rewardkit.audit.probes",
    "FAMILIES": "rewardkit.audit.probes",
    "PROBES": "rewardkit.audit.probes",
    "Probe": "rewardkit.audit.probes",
    "select_probes": "rewardkit.audit.probes",
    "AuditResult": "rewardkit.audit.runner",
    "ProbeResult": "rewardkit.audit.runner",
    "run_audit": "rewardkit.audit.runner",
    "write_audit_report": "rewardkit.audit.report",
}

__all__ = [
    "DEFAULT_THRESHOLD",
    "FAMILIES",
    "PROBES",
    "AuditResult",
    "Probe",
    "ProbeResult",
    "run_audit",
    "select_probes",
    "write_audit_report",
]

if TYPE_CHECKING:
    from rewardkit.audit.probes import DEFAULT_THRESHOLD, FAMILIES, PROBES, Probe, select_probes
    from rewardkit.audit.report import write_audit_report
    from rewardkit.audit.runner import AuditResult, ProbeResult, run_audit

__getattr__ = lazy_exports(__name__, _EXPORTS)
