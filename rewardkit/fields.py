"""Config dataclass fields that also describe their command-line option, so the CLI is derived from the configs.

    learning_rate: float = option(1e-5, "peak learning rate", flag="--lr", above=0)

The metadata (help, flag, choices, valid range) is read by `rewardkit.cli_options` to build the argparse options
and by `validate_fields` to check a config built in Python or from YAML, so both say the same thing about a bad
value: `--lr must be > 0 (got 0)`. Nothing here imports more than the standard library: `--help` stays fast.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from rewardkit.errors import RewardkitError


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    flag: str | None = None,
    choices: Sequence[str] | None = None,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
    negatable: bool = False,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field with its command-line option.

    `flag` defaults to `--field-name`; a boolean that defaults to True is switched off by a `--no-...` flag, or
    by both `--x/--no-x` with `negatable`. `at_least`/`above`/`at_most`/`below` bound numbers (None passes);
    `parse` turns the command-line string into the value (e.g. `--columns a=b,c=d` into a dict).
    """
    metadata = {"help": help, "flag": flag, "choices": tuple(choices) if choices is not None else None,
                "at_least": at_least, "above": above, "at_most": at_most, "below": below, "parse": parse,
                "metavar": metavar, "negatable": negatable}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of a config dataclass that carry an option."""
    return [field for field in dataclasses.fields(cls) if "help" in field.metadata]


def range_text(metadata: dict) -> str | None:
    """'>= 1', '> 0', 'in [0, 1)', ...: the valid range of a numeric option, or None when it has none."""
    low = ("[", metadata["at_least"]) if metadata.get("at_least") is not None else (
        ("(", metadata["above"]) if metadata.get("above") is not None else None)
    high = ("]", metadata["at_most"]) if metadata.get("at_most") is not None else (
        (")", metadata["below"]) if metadata.get("below") is not None else None)
    if low and high:
        return f"in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {low[1]:g}"
    if high:
        return f"{'<=' if high[0] == ']' else '<'} {high[1]:g}"
    return None


def check_value(name: str, value: Any, metadata: dict) -> str | None:
    """Why `value` is not valid for the option called `name` ('--max-steps must be >= 1 (got -1)'), or None."""
    if value is None:
        return None
    choices = metadata.get("choices")
    if choices is not None and value not in choices:
        return f"{name} must be one of {', '.join(map(str, choices))} (got {value!r})"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    bounds = metadata
    ok = ((bounds.get("at_least") is None or value >= bounds["at_least"])
          and (bounds.get("above") is None or value > bounds["above"])
          and (bounds.get("at_most") is None or value <= bounds["at_most"])
          and (bounds.get("below") is None or value < bounds["below"]))
    return None if ok else f"{name} must be {range_text(bounds)} (got {value:g})"


def validate_fields(config: Any) -> None:
    """Raise a `RewardkitError` naming the flag and what it expects for the first field of the wrong type (a YAML
    config can hold anything) or out of its range."""
    hints = typing.get_type_hints(type(config))
    for field in option_fields(type(config)):
        value, flag = getattr(config, field.name), flag_of(field)
        expected = scalar_type(hints[field.name])
        if value is not None and expected in _NOUNS and not _is_a(value, expected):
            raise RewardkitError(f"{flag} expects {_NOUNS[expected]} (got {value!r})")
        problem = check_value(flag, value, field.metadata)
        if problem:
            raise RewardkitError(problem)


_NOUNS = {int: "an integer", float: "a number", bool: "true or false", str: "text"}


def scalar_type(hint: Any) -> Any:
    """The type a field holds when it is set: `int` for `int | None`, `list[str]` for `list[str]`."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _is_a(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)
