"""The base error for mistakes a user can fix; the CLI prints these as one line instead of a traceback."""

from __future__ import annotations

import os
import re
from pathlib import Path


class RewardkitError(Exception):
    """A problem with the user's input or setup, with a message that says what to do next."""


def hub_offline_note() -> str:
    """What to add to 'the Hugging Face hub could not provide X' when HF_HUB_OFFLINE is on (else nothing)."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    if value.strip().lower() in ("", "0", "false", "no", "off"):
        return ""
    return f"; HF_HUB_OFFLINE={value} is set, so the hub was not asked (unset it where the hub is reachable)"


def model_source_error(source: str | os.PathLike, error: Exception, what: str = "model") -> RewardkitError:
    """A model or tokenizer that could not be loaded from `source`: say whether it is a missing local path or
    something the hub could not provide, instead of the hub client's message about repository ids."""
    path = Path(source).expanduser()
    if path.is_dir():
        return RewardkitError(f"'{source}' is a directory but holds no loadable {what} "
                              f"({type(error).__name__}: {_first_line(error)})")
    if not looks_like_hub_id(str(source)):
        return RewardkitError(f"'{source}': no such directory (expected a {what} checkpoint directory)")
    return RewardkitError(
        f"'{source}': no such local directory, and the Hugging Face hub did not provide a {what} of that name "
        f"({type(error).__name__}: {_first_line(error)}){hub_offline_note()}")


def looks_like_hub_id(name: str) -> bool:
    """`name` or `owner/name`, as the Hugging Face hub spells ids; anything else can only be a local path."""
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name) is not None and not name.endswith((".", "-"))


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0]
