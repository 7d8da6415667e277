"""Run rewardkit commands in one launched process and record which files it changed under a watched directory.

    torchrun --nproc_per_node 2 tests/distributed/audited_cli.py COMMANDS.json WATCHED_DIR AUDIT_DIR

COMMANDS.json holds a list of argument lists, run in order through `rewardkit.cli.main` (a failure stops the run).
Python's audit hooks see every file opened for writing and every directory made, renamed or removed from Python, so
the record of rank r (AUDIT_DIR/rank-r.json) shows whether that process wrote anything. (Files written by native code,
safetensors or torch.save, do not show, but every save of rewardkit also makes directories and writes JSON.)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

WRITE_EVENTS = {"os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.truncate", "shutil.rmtree"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _is_write(event: str, args: tuple) -> bool:
    if event in WRITE_EVENTS:
        return True
    if event != "open":
        return False
    _, mode, flags = args
    return any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE_FLAGS)


def main() -> int:
    commands_file, watched, audit_dir = sys.argv[1:4]
    watched = os.path.realpath(watched)
    writes: list[str] = []

    def hook(event: str, args: tuple) -> None:
        if not _is_write(event, args) or not args or not isinstance(args[0], str | bytes | os.PathLike):
            return
        path = os.path.realpath(os.fsdecode(args[0]))
        if path.startswith(watched):
            writes.append(f"{event} {path}")

    sys.addaudithook(hook)
    from rewardkit.cli import main as rewardkit_main

    status = 0
    for argv in json.loads(Path(commands_file).read_text()):
        status = rewardkit_main(argv)
        if status:
            break
    Path(audit_dir, f"rank-{os.environ.get('RANK', '0')}.json").write_text(json.dumps(writes))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
