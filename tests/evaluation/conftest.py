"""One torch thread per test module, and tiny RMs with a known length preference (trained once per session)."""

from __future__ import annotations

import pytest

from tests.conftest import single_thread_fixture
from tests.evaluation.helpers import length_rms

single_thread = single_thread_fixture()


@pytest.fixture(scope="session")
def length_models(tmp_path_factory, tiny_sft, shared_data) -> dict:
    """RMs trained on AlpacaEval as judged (`alpaca`), on a length-balanced subset (`balanced`) and to prefer the
    shorter response (`short`), plus the held-out length-balanced test pairs (`test`)."""
    return length_rms(tmp_path_factory.getbasetemp() / "length-rms", tiny_sft, shared_data)
