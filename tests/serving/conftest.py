"""Fixtures for the serving tests: a tiny real reward model on disk (with normalization) and a running server."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardkit.model import RewardModel
from rewardkit.serving import BackgroundServer, ServerConfig


@pytest.fixture(scope="session")
def rm_dir(tiny_sft, tmp_path_factory) -> Path:
    model = RewardModel.from_sft(tiny_sft, max_length=64)
    model.set_normalization(offset=0.25, scale=2.0)  # so every comparison also checks normalization is applied
    directory = tmp_path_factory.mktemp("rm")
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def model(rm_dir) -> RewardModel:
    return RewardModel.from_pretrained(rm_dir)


@pytest.fixture(scope="module")
def server(model):
    """One shared server with default batching, on a free loopback port."""
    with BackgroundServer(model, ServerConfig(port=0, max_body_bytes=256 * 1024)) as running:
        yield running
