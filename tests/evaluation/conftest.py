"""One torch thread per test module, and tiny RMs with a known length preference (trained once per session)."""

from __future__ import annotations

import pytest

from tests.evaluation.helpers import length_rms, one_thread


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def length_models(tmp_path_factory, tiny_sft, shared_data) -> dict:
    """RMs trained on AlpacaEval as judged (`alpaca`), on a length-balanced subset (`balanced`) and to prefer the
    shorter response (`short`), plus the held-out length-balanced test pairs (`test`)."""
    return length_rms(tmp_path_factory.getbasetemp() / "length-rms", tiny_sft, shared_data)
