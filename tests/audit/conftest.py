"""The same fixtures as the evaluation tests: one torch thread, and the length-preferring RMs (trained once)."""

from tests.evaluation.conftest import _one_torch_thread, length_models  # noqa: F401
