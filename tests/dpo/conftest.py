"""One intra-op thread for the tiny models of these tests (tests/conftest.py: one_thread)."""

from __future__ import annotations

from tests.conftest import single_thread_fixture

single_thread = single_thread_fixture()
