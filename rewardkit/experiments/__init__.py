"""Experiments: questions the seeds leave open, answered by code in the synthetic worlds (`rewardkit experiment`).

Each experiment registers a name, a one-line help, its options and the function that runs it; the CLI builds
`rewardkit experiment NAME` from this registry, so adding one is one entry here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Experiment:
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _prm() -> Experiment:
    from rewardkit.experiments import prm_cli  # argparse only: --help stays fast

    return prm_cli.EXPERIMENT


def _frontier() -> Experiment:
    from rewardkit.experiments import frontier_cli

    return frontier_cli.EXPERIMENT


def _scaling() -> Experiment:
    from rewardkit.experiments import scaling_cli

    return scaling_cli.EXPERIMENT


def _ensembles() -> Experiment:
    from rewardkit.experiments import ensembles_cli

    return ensembles_cli.EXPERIMENT


def _length() -> Experiment:
    from rewardkit.experiments import length_control_cli

    return length_control_cli.EXPERIMENT


EXPERIMENTS: dict[str, Callable[[], Experiment]] = {"prm": _prm, "frontier": _frontier, "scaling": _scaling,
                                                    "ensembles": _ensembles, "length": _length}
