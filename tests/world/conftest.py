"""One intra-op thread for the world's tests: the models are tiny, so threads only add contention."""

from __future__ import annotations

from tests.conftest import single_thread_fixture

single_thread = single_thread_fixture()
