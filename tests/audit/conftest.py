"""The same fixtures as the evaluation tests: one torch thread, and the length-preferring RMs (trained once)."""

from tests.evaluation.conftest import length_models, single_thread  # noqa: F401
