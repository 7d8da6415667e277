"""`rewardkit label ...`: set up a labelling database, fill it with items, serve the app, export the rankings.

Only argparse is imported here; SQLAlchemy, Starlette and torch load when a sub-command runs, so
`rewardkit --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from rewardkit.errors import RewardkitError

logger = logging.getLogger("rewardkit.label")
DB_HELP = "database URL: sqlite:///file.db or postgresql://user:password@host/dbname ($REWARDKIT_LABEL_DB, " \
          "else sqlite:///labels.db)"


def add_label_parser(subparsers) -> argparse.ArgumentParser:
    """Register `label` and its sub-commands on the main CLI's subparsers."""
    p = subparsers.add_parser(
        "label",
        help="collect K-wise rankings from people: a labelling web app on SQLite or PostgreSQL",
        description="A labelling app for K-wise rankings and pairwise choices: import or generate items, invite "
        "annotators, serve the app (loopback by default), watch agreement on the admin dashboard, export in "
        "the ranking format with every annotator's ranking kept (soft labels for `rewardkit train`).",
    )
    commands = p.add_subparsers(dest="label_command", required=True, metavar="SUBCOMMAND")

    init = _command(commands, "init", "create or upgrade the database schema; optionally an admin account",
                    _run_init)
    init.add_argument("--admin", help="create this admin account (prints an invite link unless --password-file)")
    _password_option(init)

    imp = _command(commands, "import", "import items (prompt + K responses per record) into a project", _run_import)
    imp.add_argument("--data", required=True, help="JSONL / JSON / CSV / Parquet file of {prompt, responses[, id]}")
    _project_options(imp)

    gen = _command(commands, "generate", "sample K responses per prompt from a causal LM and import them",
                   _run_generate)
    gen.add_argument("--policy", required=True, help="causal LM checkpoint directory (e.g. your SFT model)")
    gen.add_argument("--prompts", required=True, help="prompts: records with a 'prompt' field, or a .txt file "
                     "with one prompt per line")
    gen.add_argument("--k", type=int, default=4, help="responses per prompt (4)")
    gen.add_argument("--max-new-tokens", type=int, default=64, help="tokens per response at most (64)")
    gen.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0 is greedy (1.0)")
    gen.add_argument("--top-k", type=int, help="sample among the k most likely tokens (default: all)")
    gen.add_argument("--batch-size", type=int, default=16, help="sequences per sampling batch (16)")
    gen.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (auto)")
    gen.add_argument("--output", help="also write the items as JSONL here")
    gen.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    _project_options(gen)

    add = _command(commands, "add-annotator", "create an account; prints a one-time invite link", _run_add)
    add.add_argument("name", help="login name (letters, digits, '-', '_', '.')")
    add.add_argument("--admin", action="store_true", help="may see the dashboard and export")
    _password_option(add)
    add.add_argument("--base-url", default="http://127.0.0.1:8080", help="where the app is served, for the link")

    invite = _command(commands, "invite", "a new invite link for an account (forgotten password)", _run_invite)
    invite.add_argument("name")
    invite.add_argument("--base-url", default="http://127.0.0.1:8080", help="where the app is served, for the link")

    serve = _command(commands, "serve", "serve the labelling app over HTTP (uvicorn)", _run_serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (8080)")
    serve.add_argument("--rm", help="reward model (or ensemble) directory: the dashboard shows its agreement "
                       "with each annotator")
    serve.add_argument("--secure-cookies", action="store_true",
                       help="mark cookies Secure (set it when a TLS proxy serves the app over HTTPS)")
    serve.add_argument("--max-connections", type=int, default=256, help="connections at once; more get 503 (256)")

    export = _command(commands, "export", "write the ranking format, every annotator's ranking kept", _run_export)
    export.add_argument("--project", required=True)
    export.add_argument("--output", required=True, help="JSONL file to write")
    export.add_argument("--one-per-annotator", action="store_true",
                        help="one record per ranking ('ranking', hard labels) instead of 'rankings' per item")
    export.add_argument("--exclude-unsafe", action="store_true", help="leave out items anyone flagged unsafe")

    stats = _command(commands, "stats", "print the project's agreement and throughput figures", _run_stats)
    stats.add_argument("--project", required=True)
    stats.add_argument("--output", help="also write them as JSON here")

    prioritize = _command(commands, "prioritize", "order the queue by a reward-model ensemble's disagreement "
                          "(active selection)", _run_prioritize)
    prioritize.add_argument("--project", required=True)
    prioritize.add_argument("--ensemble", required=True, help="ensemble directory from `rewardkit ensemble train`")
    prioritize.add_argument("--batch-size", type=int, default=32, help="sequences per forward pass (32)")
    return p


def _command(commands, name: str, help_text: str, handler) -> argparse.ArgumentParser:
    p = commands.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
    p.add_argument("--db", default=os.environ.get("REWARDKIT_LABEL_DB", "sqlite:///labels.db"), help=DB_HELP)
    p.set_defaults(handler=handler)
    return p


def _password_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password-file", help="file holding the password (instead of an invite link)")


def _project_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", required=True, help="project name (created if it does not exist)")
    p.add_argument("--guidelines", help="text or Markdown file with the labelling guidelines")
    p.add_argument("--annotators-per-item", type=int, default=1, help="rankings wanted per item (1)")
    p.add_argument("--overlap", type=float, default=0.2,
                   help="fraction of items ranked by at least --overlap-annotators people, for agreement (0.2)")
    p.add_argument("--overlap-annotators", type=int, default=2, help="rankings wanted per overlap item (2)")
    p.add_argument("--markdown", action="store_true", help="render prompts and responses as Markdown (safely)")
    p.add_argument("--lease-minutes", type=float, default=60.0,
                   help="an item not judged this long after it was handed out goes back to the queue (60)")
    p.add_argument("--seed", type=int, default=0, help="chooses the overlap items (and seeds sampling) (0)")


# ---------------------------------------------------------------------------------------------- handlers
def _store(url: str):
    from rewardkit.label.db import open_database
    from rewardkit.label.store import LabelStore

    return LabelStore(open_database(url))


def _read_password(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        password = Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise RewardkitError(f"--password-file {path}: {error.strerror}") from error
    if not password:
        raise RewardkitError(f"--password-file {path} is empty")
    return password


def _invite_line(name: str, token: str | None, base_url: str) -> str:
    if token is None:
        return f"account {name!r} created with the given password"
    return f"invite link for {name!r} (works once, for 72 hours): {base_url.rstrip('/')}/invite/{token}"


def _run_init(args: argparse.Namespace) -> int:
    from rewardkit.label.db import current_revision, make_engine, upgrade
    from rewardkit.label.store import LabelStore

    password = _read_password(args.password_file)
    engine = make_engine(args.db)
    before = current_revision(engine)
    head = upgrade(engine)
    print(f"database {engine.url.render_as_string(hide_password=True)} at schema revision {head}"
          + ("" if before == head else f" (was {before or 'empty'})"))
    if args.admin:
        from sqlalchemy.orm import sessionmaker

        token = LabelStore(sessionmaker(engine, expire_on_commit=False)).add_annotator(args.admin, admin=True,
                                                                                        password=password)
        print(_invite_line(args.admin, token, "http://127.0.0.1:8080"))
    return 0


def _project(store, args: argparse.Namespace) -> None:
    """Create the project from the options unless it exists (then only --guidelines updates it)."""
    from rewardkit.label.store import ProjectSettings

    guidelines = None
    if args.guidelines:
        try:
            guidelines = Path(args.guidelines).read_text(encoding="utf-8")
        except OSError as error:
            raise RewardkitError(f"--guidelines {args.guidelines}: {error.strerror}") from error
    settings = ProjectSettings(args.project, guidelines or "", args.annotators_per_item, args.overlap,
                               args.overlap_annotators, args.markdown, args.lease_minutes)
    settings.validate()
    if any(p["name"] == args.project for p in store.projects()):
        if guidelines is not None:
            store.update_guidelines(args.project, guidelines)
        return
    store.create_project(settings)
    print(f"created project {args.project!r}")


def _print_import(project: str, result: dict[str, int]) -> None:
    line = f"imported {result['added']} items into {project!r} ({result['overlap']} wanting several rankings)"
    if result["duplicates"]:
        line += f"; {result['duplicates']} already there, left alone"
    print(line)


def _run_import(args: argparse.Namespace) -> int:
    from rewardkit.label.store import read_items

    store = _store(args.db)
    items = read_items(args.data)  # read and validate everything before the project is touched
    _project(store, args)
    _print_import(args.project, store.import_items(args.project, items, seed=args.seed))
    return 0


def _run_generate(args: argparse.Namespace) -> int:
    from rewardkit.label.export import write_jsonl
    from rewardkit.label.generate import GenerateConfig, generate_items, read_prompts

    config = GenerateConfig(args.policy, args.k, args.max_new_tokens, args.temperature, args.top_k, args.seed,
                            args.batch_size, device=args.device)
    config.validate()
    if args.output and not Path(args.output).resolve().parent.is_dir():
        raise RewardkitError(f"--output {args.output}: the folder does not exist")
    store = _store(args.db)
    prompts = read_prompts(args.prompts)
    items = generate_items(config, prompts, progress=args.progress)
    if args.output:
        write_jsonl([{"id": i.external_id, "prompt": i.prompt, "responses": i.responses, **i.meta} for i in items],
                    args.output)
    _project(store, args)
    _print_import(args.project, store.import_items(args.project, items, seed=args.seed))
    return 0


def _run_add(args: argparse.Namespace) -> int:
    token = _store(args.db).add_annotator(args.name, admin=args.admin, password=_read_password(args.password_file))
    print(_invite_line(args.name, token, args.base_url))
    return 0


def _run_invite(args: argparse.Namespace) -> int:
    print(_invite_line(args.name, _store(args.db).new_invite(args.name), args.base_url))
    return 0


def reward_function(path: str, batch_size: int = 32):
    """Scores items' responses with a reward model or ensemble directory, for the dashboard's RM agreement."""
    from rewardkit.ensemble.ensemble import MANIFEST, RewardEnsemble
    from rewardkit.model import RewardModel

    model = RewardEnsemble.from_pretrained(path) if (Path(path) / MANIFEST).is_file() else \
        RewardModel.from_pretrained(path)

    def score(items):
        prompts = [item.prompt for item in items for _ in item.responses]
        responses = [response for item in items for response in item.responses]
        rewards = model.score(prompts, responses, batch_size=batch_size).tolist() if prompts else []
        out, start = {}, 0
        for item in items:
            out[item.id] = rewards[start:start + len(item.responses)]
            start += len(item.responses)
        return out

    return score


def label_app(db: str, config):
    """Build the app in the serving process (`rewardkit.serving.asgi.AppFactory`): (ASGI app, no hooks)."""
    from rewardkit.label.app import create_app

    return create_app(_store(db), config), None


def _run_serve(args: argparse.Namespace) -> int:
    from rewardkit.label.app import AppConfig
    from rewardkit.serving.asgi import AppFactory, is_loopback, run_server
    from rewardkit.serving.config import HttpSettings

    settings = HttpSettings(host=args.host, port=args.port, max_connections=args.max_connections)
    settings.check()
    _store(args.db)  # a missing or outdated database fails here, before anything listens
    config = AppConfig(secure_cookies=args.secure_cookies)
    if args.rm:
        config.reward_function, config.reward_model_name = reward_function(args.rm), Path(args.rm).name
    if not is_loopback(args.host) and not args.secure_cookies:
        logger.warning("serving on %s over plain HTTP: passwords and cookies cross the network unencrypted; put a "
                       "TLS proxy in front and pass --secure-cookies", args.host)
    # One process: the login rate limit and the reward cache live in its memory.
    run_server(AppFactory(label_app, (args.db, config)), settings,
               lambda url: print(f"labelling app on {url} (database {args.db}); Ctrl-C stops", flush=True))
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from rewardkit.label.export import export_records, write_jsonl

    store = _store(args.db)
    records = export_records(store, args.project, args.one_per_annotator, args.exclude_unsafe)
    write_jsonl(records, args.output)
    rankings = sum(len(r.get("rankings", [r.get("ranking")])) for r in records)
    print(f"exported {len(records)} records ({rankings} rankings) from {args.project!r} -> {args.output}")
    return 0


def _run_stats(args: argparse.Namespace) -> int:
    from rewardkit.label.stats import project_stats

    store = _store(args.db)
    stats = project_stats(store.items(args.project), store.judgements(args.project))
    summary = {k: v for k, v in stats.items() if k not in ("timeline", "seconds")}
    if args.output:
        Path(args.output).write_text(json.dumps(summary, indent=2))
    alpha = stats["krippendorff_alpha"]
    print(f"{args.project}: {stats['rankings']} rankings of {stats['rankings_wanted']} wanted, "
          f"{stats['items_complete']}/{stats['items']} items complete, {stats['skips']} skips, "
          f"{stats['unsafe_flags']} unsafe flags")
    print(f"pairwise agreement {_pct(stats['mean_pairwise_agreement'])}, Krippendorff's alpha "
          f"{'–' if alpha is None else f'{alpha:.3f}'} over {stats['alpha_units']} pairs of "
          f"{stats['overlap_items']} shared items")
    for a in stats["annotators"]:
        print(f"  {a['name']:<16} {a['rankings']:>5} rankings  {a['skips']:>3} skips  vs others' majority "
              f"{_pct(a['vs_others_majority'])}  median {a['median_seconds'] or 0:.0f} s/item")
    return 0


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _run_prioritize(args: argparse.Namespace) -> int:
    from rewardkit.label.active import disagreement_priorities

    store = _store(args.db)
    priorities = disagreement_priorities(store, args.project, args.ensemble, args.batch_size)
    print(f"ordered {len(priorities)} open items of {args.project!r} by ensemble disagreement "
          f"(highest first: {max(priorities.values(), default=0):.3f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m rewardkit.label ...`: the same as `rewardkit label ...`."""
    from rewardkit.cli import main as rewardkit_main

    return rewardkit_main(["label", *(sys.argv[1:] if argv is None else argv)])
