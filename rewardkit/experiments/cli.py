"""`rewardkit experiment NAME`: one subcommand per registered experiment (`rewardkit.experiments.EXPERIMENTS`)."""

from __future__ import annotations


def add_experiment_parser(subparsers) -> None:
    from rewardkit.experiments import EXPERIMENTS

    parser = subparsers.add_parser("experiment", help="run an experiment in a synthetic world and write its report",
                                   description="Experiments that answer open questions with intervals over seeds.")
    names = parser.add_subparsers(dest="experiment", required=True, metavar="NAME")
    for name, load in EXPERIMENTS.items():
        experiment = load()
        p = names.add_parser(name, help=experiment.help, description=experiment.description)
        experiment.add_arguments(p)
        p.set_defaults(handler=experiment.run)
