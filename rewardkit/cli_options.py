"""The command line's shared parts: the parser that turns every mistake into one line, options derived from the
config dataclasses, the data options every data-reading command takes, and checks that run before a model loads.

Every command module (train and score in cli.py, eval, audit, serve, ensemble, dpo) builds on this module and on
no other command's module. It imports only the standard library and rewardkit's light modules, so `--help`
answers without torch or transformers.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import signal
import socket
import sys
import threading
import typing
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from rewardkit.data.options import DataOptions, StepDataOptions
from rewardkit.errors import RewardkitError, hub_offline_note, looks_like_hub_id
from rewardkit.fields import check_value, flag_of, option_fields, scalar_type

if typing.TYPE_CHECKING:
    from rewardkit.data import LoadReport, PreferenceDataset

logger = logging.getLogger("rewardkit")
ERROR_PREFIX = "rewardkit: error:"


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with every usage mistake as one line, `rewardkit: error: ...`, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument (\S+): \1 ", r"\1 ", message)  # "argument --x: --x must be" -> "--x must be"
        self.exit(2, f"{ERROR_PREFIX} {message} (see `{self.prog} --help`)\n")

    def parse_known_args(self, args=None, namespace=None):
        """An option the command does not have is reported by the command itself, so the hint names its --help
        (`rewardkit ensemble eval --help`), not the top-level one."""
        namespace, extras = super().parse_known_args(args, namespace)
        if extras and not any(isinstance(action, argparse._SubParsersAction) for action in self._actions):
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def fail(message: str) -> NoReturn:
    raise RewardkitError(message)


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command's `handler`: a user's mistake (RewardkitError, a missing file) is
    one line and exit status 2. The entry point of `rewardkit` and of `python -m rewardkit.serving` alike."""
    args = parser.parse_args(argv)
    if "argv" in vars(args):
        args.argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.INFO, format="rewardkit: %(message)s", stream=sys.stderr)
    # Accelerate's INFO lines ("[RANK 0] Saving current state to ...", five per checkpoint) are for its developers,
    # and under this format they would read as rewardkit's own.
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    if False in (vars(args).get("progress"), vars(args).get("progress_bar")):  # --no-progress: transformers' too
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    try:
        with _sigterm_as_interrupt():
            return args.handler(args)
    except (RewardkitError, FileNotFoundError) as error:
        print(f"{ERROR_PREFIX} {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        return report_interrupt(interrupt, "a training run continues from its last checkpoint with --resume")


def report_interrupt(interrupt: KeyboardInterrupt, hint: str) -> int:
    """One line on stderr for Ctrl-C or SIGTERM (`Terminated`), with a hint; the exit status a shell expects."""
    terminated = isinstance(interrupt, Terminated)
    print(f"rewardkit: {'terminated' if terminated else 'interrupted'} ({hint})", file=sys.stderr)
    return 128 + signal.SIGTERM if terminated else 130


class Terminated(KeyboardInterrupt):
    """SIGTERM during a command, raised like Ctrl-C's KeyboardInterrupt so that the same cleanup runs."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    # SIGTERM's default action ends this process at once: `finally` blocks never run, and the demo's spawned worker
    # processes were left running as orphans. Raising instead lets them be stopped (rewardkit.demo.ppo_runs).
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set a handler
        yield
        return

    def terminate(signum, frame) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)  # None: set outside Python


# ------------------------------------------------------------------------------------- options from dataclasses
def add_config_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    config: type,
    *,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    unset_default: bool = False,
    defaults: dict[str, Any] | None = None,
) -> None:
    """One option per field of `config` that carries `rewardkit.fields.option` metadata: flag, help (with the
    default), choices and the valid range come from the field. `unset_default` leaves every default at None, so
    a caller can tell what was given on the command line (`train` lets --config fill in the rest); `defaults`
    replaces some fields' defaults for this command (`label serve` listens on 8080)."""
    hints = typing.get_type_hints(config)
    only, exclude = (set(only) if only is not None else None), set(exclude)
    for field in option_fields(config):
        if (only is not None and field.name not in only) or field.name in exclude:
            continue
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        default = (defaults or {}).get(field.name, default)
        meta = field.metadata
        kwargs: dict[str, Any] = {"dest": field.name, "help": _help(meta["help"], default)}
        value_type, is_list = _value_type(hints[field.name])
        if value_type is bool:
            if meta["negatable"]:
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs["action"] = "store_false" if default else "store_true"
            kwargs["default"] = None if unset_default else default
        else:
            kwargs["type"] = _converter(flag_of(field), meta, meta["parse"] or value_type)
            kwargs["default"] = None if unset_default else default
            kwargs["metavar"] = meta["metavar"]
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
                kwargs["metavar"] = kwargs["metavar"] or "{" + ",".join(meta["choices"]) + "}"
            if is_list:
                kwargs["nargs"] = "+"
        parser.add_argument(flag_of(field), **kwargs)


def config_values(args: argparse.Namespace, config: type) -> dict[str, Any]:
    """The options of `config`'s fields that were given (not None) in `args`."""
    names = {field.name for field in dataclasses.fields(config)}
    return {name: value for name, value in vars(args).items() if name in names and value is not None}


def _help(text: str, default: Any) -> str:
    if default is None or isinstance(default, bool) or default in ("", [], {}):
        return text
    return f"{text} (default: {default})"


def _value_type(hint: Any) -> tuple[type, bool]:
    """(the scalar type, whether it is a list) of `int | None`, `list[str]`, `dict[str, str] | None`, ..."""
    hint = scalar_type(hint)
    origin = typing.get_origin(hint)
    if origin is list:
        return typing.get_args(hint)[0], True
    return (origin or hint), False


def _converter(flag: str, meta: dict, convert: Any):
    """An argparse `type` that converts and checks the value, failing with the flag's name and valid range."""
    noun = {int: "an integer", float: "a number"}.get(convert, "a value")

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except RewardkitError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} expects {noun} (got {text!r})") from None
        problem = None if meta["choices"] else check_value(flag, value, meta)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def bounded(flag: str, convert: type = int, **bounds: float) -> Any:
    """An argparse `type` for an option that is not a config field: `bounded("--limit", at_least=1)`."""
    return _converter(flag, {"choices": None, **bounds}, convert)


def add_batch_size(parser: argparse.ArgumentParser, default: int = 32) -> None:
    parser.add_argument("--batch-size", type=bounded("--batch-size", at_least=1), default=default,
                        help=f"sequences per forward pass (default: {default})")


# ------------------------------------------------------------------------------------------------- data options
def add_data_options(parser: argparse.ArgumentParser, unset_default: bool = False,
                     options: type[DataOptions] = DataOptions) -> None:
    """--format, --skip-bad-records, --columns and --max-length: how every data-reading command reads data
    (`options=StepDataOptions`: --format also takes the step formats)."""
    group = parser.add_argument_group("data options", "the same for every command that reads data")
    add_config_options(group, options, unset_default=unset_default)


def data_options(args: argparse.Namespace) -> DataOptions:
    return DataOptions(**{field.name: getattr(args, field.name) for field in dataclasses.fields(DataOptions)})


def add_scoring_inputs(parser: argparse.ArgumentParser) -> None:
    """--data, --output, --batch-size and the data options: every command that writes one reward per response."""
    parser.add_argument("--data", required=True, help="file with {prompt, response} records or preference data "
                        "(then every response is scored)")
    parser.add_argument("--output", help="JSONL output file (default: standard output)")
    add_batch_size(parser)
    add_data_options(parser)


def add_evaluation_inputs(parser: argparse.ArgumentParser, batch_size: bool = True,
                          options: type[DataOptions] = DataOptions) -> None:
    """--data, --output, --batch-size and the data options: every command that measures accuracy on labelled data."""
    parser.add_argument("--data", required=True, nargs="+", help="preference data file(s) or dataset id(s)")
    parser.add_argument("--output", help="JSON file for the metrics (default: only print)")
    if batch_size:
        add_batch_size(parser)
    add_data_options(parser, options=options)


def load_data(
    args: argparse.Namespace, source: str, limit: int | None = None, format: str | None = None
) -> PreferenceDataset:
    """`source` read with the command's data options (`format` overrides --format); what was read, skipped and
    kept empty is logged."""
    from rewardkit.data import load_preferences
    from rewardkit.data.io import is_hub_dataset_id

    if not Path(source).exists() and is_hub_dataset_id(source) and not hub_offline_note():
        endpoint = hub_endpoint_unreachable()
        if endpoint:
            fail(f"{source}: no such file, and the Hugging Face hub ({endpoint}) cannot be reached from here to load "
                 "a dataset of that name (set HF_HUB_OFFLINE=1 to use a copy in the local cache)")
    options = data_options(args)
    dataset = load_preferences(source, format=format or options.format, on_error=options.on_error, limit=limit,
                               columns=options.columns)
    log_load_report(source, dataset.report)
    return dataset


def log_load_report(source: str, report: LoadReport) -> None:
    (logger.warning if report.num_skipped else logger.info)("%s: %s", source, report.summary())


# ------------------------------------------------------------------------------------------ train and score
def add_train_options(p: argparse.ArgumentParser) -> None:
    """The options of `rewardkit train` and `rewardkit ensemble train`: one per TrainConfig field (its metadata
    gives flag, help, choices and range), plus --config and the launcher's --num-processes.

    Every option defaults to None, so that --config and then TrainConfig's defaults (shown in the help) fill in what
    is left out. Also sets the `argv` default that `main()` fills in, for --num-processes to start the command again.
    """
    from rewardkit.training.config import TrainConfig

    add_config_options(p, TrainConfig, exclude=[field.name for field in dataclasses.fields(DataOptions)],
                       unset_default=True)
    add_data_options(p, unset_default=True, options=StepDataOptions)
    p.add_argument("--config", help="YAML file with TrainConfig options (command-line flags win)")
    p.add_argument("--num-processes", type=bounded("--num-processes", at_least=1),
                   help="data-parallel processes on this machine, started through Accelerate (1); for several "
                   "machines, FSDP or DeepSpeed use `accelerate launch -m rewardkit train`")
    p.set_defaults(argv=[])  # main() fills in argv: --num-processes starts the same command again


def train_config(args: argparse.Namespace, **defaults: Any):
    """The TrainConfig of a `train`-like command: flags, then --config, then `defaults`, then TrainConfig's own;
    validated, with the model and output directory checked, before anything is loaded."""
    from rewardkit.training.config import TrainConfig

    flags = config_values(args, TrainConfig)
    if args.config:
        config = TrainConfig.from_yaml(args.config, defaults, **flags)
    else:
        config = TrainConfig(**{**defaults, **flags})
    config.validate()
    check_model_source(config.model, "--model", "SFT model")
    check_output_dir(config.output_dir, "--output")
    return config


def read_items(args: argparse.Namespace) -> list[dict]:
    """The items a scoring command scores, read (and reported) before its model loads."""
    from rewardkit.scoring import read_scoring_inputs

    check_output_file(args.output)
    items, report = read_scoring_inputs(args.data, data_options(args))
    if not items:
        raise RewardkitError(f"{args.data}: nothing to score ({report.summary()})")
    log_load_report(args.data, report)
    return items


def read_solutions(args: argparse.Namespace) -> list[dict] | None:
    """The solutions given as steps that `score` scores step by step, read before its model loads; None when
    --data holds no step records (then it holds responses to score whole)."""
    from rewardkit.scoring import read_step_inputs

    solutions = read_step_inputs(args.data)
    if solutions is not None:
        check_output_file(args.output)
    return solutions


# --------------------------------------------------------------------------------- checks before a model loads
def check_output_file(path: str | None, flag: str = "--output") -> None:
    """A file the command will write: its directory must exist and be writable, and it must not be a directory."""
    if path is None:
        return
    target = Path(path).expanduser()
    if target.is_dir():
        fail(f"{flag} {path} is a directory; expected a file name")
    parent = target.parent
    if not parent.is_dir():
        fail(f"{flag} {path}: directory {parent} does not exist; create it first or choose another path")
    if not os.access(parent, os.W_OK):
        fail(f"{flag} {path}: directory {parent} is not writable")


def check_output_dir(path: str | None, flag: str = "--output") -> None:
    """A directory the command will create or fill: not a file, and creatable under a writable directory."""
    if path is None:
        return
    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        fail(f"{flag} {path} is a file; expected a directory")
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        fail(f"{flag} {path}: {existing} is a file, so the directory cannot be created")
    if not os.access(existing, os.W_OK):
        fail(f"{flag} {path}: {existing} is not writable")


def check_model_source(source: str | None, flag: str, what: str = "model") -> None:
    """A model given as a local directory or a hub id: a path that cannot be either fails here, at once, rather
    than after the hub client was asked for a repository of that name."""
    if source is None:
        return
    path = Path(source).expanduser()
    if path.is_dir():
        return
    if path.exists():
        fail(f"{flag} {source} is a file; expected a {what} directory or a Hugging Face model id")
    if not looks_like_hub_id(source):
        fail(f"{flag} {source}: no such directory (expected a {what} directory or a Hugging Face id owner/name)")
    offline = hub_offline_note()
    if offline:
        fail(f"{flag} {source}: no such local directory{offline}")
    endpoint = hub_endpoint_unreachable()
    if endpoint and not _in_hub_cache(source):
        fail(f"{flag} {source}: no such local directory, and the Hugging Face hub ({endpoint}) cannot be reached "
             "from here to look for a model of that name")


def hub_endpoint_unreachable(timeout: float = 3.0) -> str | None:
    """The hub's address when a connection to it fails at once (no network, no DNS), else None. The hub client
    would retry for about a minute before saying the same; behind a proxy nothing is probed."""
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return url.netloc
    return None


def _in_hub_cache(model_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model_id, "config.json"), str)


