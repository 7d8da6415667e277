"""The labelling web app: server-rendered pages (Starlette + Jinja2) with a little JavaScript, and a JSON API that
programs (simulated labellers, load tests, other front ends) use the same way, CSRF token included.

    annotators   /login, /invite/{token}, /projects, /projects/{name}/next, /assignments/{id} (GET: the ranking
                 page; POST: submit a ranking, a pairwise choice or a skip)
    JSON API     GET /api/session, GET /api/projects/{name}/next, POST /api/assignments/{id}
    admins       /admin (projects, annotators, invites), /admin/projects/{name} (live dashboard, plots, export)

Database work runs in Starlette's thread pool, one `LabelStore` transaction per request. Pages an annotator may
not see answer 404 (another's assignment: indistinguishable from none) or 403 (admin pages).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from rewardkit.errors import RewardkitError
from rewardkit.label.render import render
from rewardkit.label.security import CSRF_FIELD, CSRF_HEADER, LoginLimiter, csrf_ok, csrf_token
from rewardkit.label.store import (
    SKIP_REASONS,
    AnnotatorInfo,
    AssignmentView,
    ConflictError,
    Decision,
    ItemRow,
    LabelStore,
    NotFoundError,
    places_to_ranking,
)

logger = logging.getLogger("rewardkit.label")
HERE = Path(__file__).parent
MAX_JSON_BYTES = 256 * 1024
# Rewards per item id for the items given, from a reward model: the dashboard's "RM agreement" column.
RewardFunction = Callable[[Sequence[ItemRow]], Mapping[int, Sequence[float]]]


@dataclass
class AppConfig:
    secure_cookies: bool = False  # Secure cookie flag: set it when the app is served over HTTPS
    session_hours: float = 12.0
    login_max_failures: int = 5  # per account name (4x that per client address) ...
    login_window_seconds: float = 300.0  # ... within this window
    reward_function: RewardFunction | None = None
    reward_model_name: str | None = None


class _SecurityHeaders:
    """Headers on every response: a strict Content-Security-Policy (no inline script, nothing from elsewhere),
    no framing, no sniffing, no referrer, and no caching of pages that show someone's work."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                                      "img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                                                      "base-uri 'none'; object-src 'none'")
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                if not scope["path"].startswith("/static/"):
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class LabelApp:
    def __init__(self, store: LabelStore, config: AppConfig):
        self.store, self.config = store, config
        # Per account name, and (4x looser, as several people may share one address) per client address.
        self.name_limiter = LoginLimiter(config.login_max_failures, config.login_window_seconds)
        self.address_limiter = LoginLimiter(4 * config.login_max_failures, config.login_window_seconds)
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                 undefined=jinja2.StrictUndefined)
        env.filters["render"] = render
        env.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.1f}%"
        env.filters["num"] = lambda v, digits=2: "–" if v is None else f"{v:.{digits}f}"
        env.filters["q"] = lambda v: quote(str(v), safe="")
        self.templates = Jinja2Templates(env=env)
        self._rewards: dict[int, list[float]] = {}
        self._reward_lock = threading.Lock()
        self._plots: dict[tuple, bytes] = {}

    # ------------------------------------------------------------------------------------------- helpers
    def page(self, request: Request, name: str, status: int = 200, **context) -> Response:
        context.setdefault("user", request.scope.get("user"))
        context["csrf_token"] = csrf_token(request.session)
        context["csrf_field"] = CSRF_FIELD
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    async def user(self, request: Request) -> AnnotatorInfo | None:
        uid = request.session.get("uid")
        if uid is None:
            return None
        user = await run_in_threadpool(self.store.annotator, uid)
        if user is None or request.session.get("credential") != user.credential:
            request.session.clear()  # account gone or password reset: every old session ends
            return None
        request.scope["user"] = user
        return user

    async def require_user(self, request: Request) -> AnnotatorInfo:
        user = await self.user(request)
        if user is None:
            if request.url.path.startswith("/api/"):
                raise HTTPException(401, "log in first (POST /login)")
            raise HTTPException(303, headers={"Location": f"/login?next={quote(request.url.path)}"})
        return user

    async def require_admin(self, request: Request) -> AnnotatorInfo:
        user = await self.require_user(request)
        if not user.is_admin:
            raise HTTPException(403, "admins only")
        return user

    async def form(self, request: Request):
        form = await request.form(max_files=0, max_fields=64, max_part_size=64 * 1024)
        if not csrf_ok(request.session, form.get(CSRF_FIELD)):
            raise HTTPException(403, "the form's CSRF token is missing or stale; reload the page and try again")
        return form

    async def json_body(self, request: Request) -> dict[str, Any]:
        if not csrf_ok(request.session, request.headers.get(CSRF_HEADER)):
            raise HTTPException(403, f"send the session's CSRF token in the {CSRF_HEADER} header (GET /api/session)")
        body = await request.body()
        if len(body) > MAX_JSON_BYTES:
            raise HTTPException(413, f"request body over {MAX_JSON_BYTES} bytes")
        try:
            data = json.loads(body)
        except ValueError as error:
            raise HTTPException(400, f"the body is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "the body must be a JSON object")
        return data

    def login_session(self, request: Request, user: AnnotatorInfo) -> None:
        request.session.clear()  # a new session on login: nothing from before it survives (session fixation)
        request.session.update({"uid": user.id, "credential": user.credential})
        csrf_token(request.session)

    # ------------------------------------------------------------------------------------------- accounts
    async def home(self, request: Request) -> Response:
        user = await self.user(request)
        return RedirectResponse("/admin" if user and user.is_admin else "/projects" if user else "/login", 303)

    async def login(self, request: Request) -> Response:
        target = _safe_next(request.query_params.get("next"))
        if request.method == "GET":
            return self.page(request, "login.html", next=target, error=None)
        form = await self.form(request)
        name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
        address = request.client.host if request.client else "unknown"
        wait = max(self.name_limiter.retry_after(name.lower()), self.address_limiter.retry_after(address))
        if wait > 0:
            return self.page(request, "login.html", status=429, next=target,
                             error=f"Too many failed logins. Try again in {int(wait) + 1} seconds.")
        user = await run_in_threadpool(self.store.authenticate, name, password)
        if user is None:
            self.name_limiter.failed(name.lower())
            self.address_limiter.failed(address)
            return self.page(request, "login.html", status=401, next=target, error="Wrong name or password.")
        self.name_limiter.succeeded(name.lower())
        self.login_session(request, user)
        return RedirectResponse(target or ("/admin" if user.is_admin else "/projects"), 303)

    async def logout(self, request: Request) -> Response:
        await self.form(request)
        request.session.clear()
        return RedirectResponse("/login", 303)

    async def invite(self, request: Request) -> Response:
        token = request.path_params["token"]
        invitee = await run_in_threadpool(self.store.invitee, token)
        if invitee is None:
            raise NotFoundError("this invite link is not valid (used or expired); ask an admin for a new one")
        if request.method == "GET":
            return self.page(request, "invite.html", invitee=invitee, error=None)
        form = await self.form(request)
        password, again = str(form.get("password", "")), str(form.get("password_again", ""))
        if password != again:
            return self.page(request, "invite.html", status=400, invitee=invitee, error="The passwords differ.")
        try:
            user = await run_in_threadpool(self.store.accept_invite, token, password)
        except NotFoundError:
            raise
        except RewardkitError as error:
            return self.page(request, "invite.html", status=400, invitee=invitee, error=str(error))
        self.login_session(request, user)
        return RedirectResponse("/admin" if user.is_admin else "/projects", 303)

    # ------------------------------------------------------------------------------------------- labelling
    async def projects(self, request: Request) -> Response:
        user = await self.require_user(request)
        projects = await run_in_threadpool(self.store.projects)
        for project in projects:
            project["mine"] = await run_in_threadpool(self.store.progress, project["name"], user.id)
        return self.page(request, "projects.html", projects=projects)

    async def next_item(self, request: Request) -> Response:
        user = await self.require_user(request)
        name = request.path_params["name"]
        view = await run_in_threadpool(self.store.next_assignment, name, user.id)
        if view is None:
            progress = await run_in_threadpool(self.store.progress, name, user.id)
            return self.page(request, "done.html", project=name, progress=progress)
        suffix = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/assignments/{view.id}{suffix}", 303)

    async def assignment(self, request: Request) -> Response:
        user = await self.require_user(request)
        view = await run_in_threadpool(self.store.assignment, _int_param(request, "id"), user.id)
        if request.method == "POST":
            return await self.submit_form(request, user, view)
        progress = await run_in_threadpool(self.store.progress, view.project, user.id)
        template = "pair.html" if view.k == 2 else "rank.html"
        return self.page(request, template, view=view, progress=progress, skip_reasons=SKIP_REASONS,
                         saved=request.query_params.get("saved") == "1",
                         note=request.query_params.get("note"))

    async def submit_form(self, request: Request, user: AnnotatorInfo, view: AssignmentView) -> Response:
        form = await self.form(request)
        decision = decision_from_form(form, view)
        following = f"/projects/{quote(view.project, safe='')}/next"
        try:
            await run_in_threadpool(self.store.submit, view.id, user.id, decision)
        except ConflictError:
            return RedirectResponse(f"{following}?note=already", 303)
        return RedirectResponse(f"{following}?saved=1", 303)

    # ------------------------------------------------------------------------------------------- JSON API
    async def api_session(self, request: Request) -> Response:
        user = await self.require_user(request)
        return JSONResponse({"user": user.name, "is_admin": user.is_admin,
                             "csrf_token": csrf_token(request.session)})

    async def api_next(self, request: Request) -> Response:
        user = await self.require_user(request)
        view = await run_in_threadpool(self.store.next_assignment, request.path_params["name"], user.id)
        if view is None:
            return Response(status_code=204)
        return JSONResponse({"assignment": view.id, "item": view.item_id, "prompt": view.prompt, "k": view.k,
                             "responses": [{"index": i, "text": text} for i, text in view.responses]})

    async def api_submit(self, request: Request) -> Response:
        user = await self.require_user(request)
        data = await self.json_body(request)
        unknown = set(data) - {"ranking", "skip_reason", "unsafe", "comment"}
        if unknown:
            raise HTTPException(400, f"unknown field(s) {sorted(unknown)}; expected ranking or skip_reason, and "
                                "optionally unsafe, comment")
        if not isinstance(data.get("unsafe", False), bool) or not isinstance(data.get("comment", ""), str):
            raise HTTPException(400, "'unsafe' must be true or false and 'comment' a string")
        skip = data.get("skip_reason")
        if skip is not None and (not isinstance(skip, str) or not skip.strip()):
            raise HTTPException(400, "'skip_reason' must be a non-empty string")
        decision = Decision(data.get("ranking"), skip, data.get("unsafe", False), data.get("comment", ""))
        judgement = await run_in_threadpool(self.store.submit, _int_param(request, "id"), user.id, decision)
        return JSONResponse({"judgement": judgement}, status_code=201)

    # ------------------------------------------------------------------------------------------- admin
    async def admin(self, request: Request) -> Response:
        await self.require_admin(request)
        invite = None
        if request.method == "POST":
            form = await self.form(request)
            name = str(form.get("name", "")).strip()
            try:
                token = await run_in_threadpool(self.store.add_annotator, name, form.get("is_admin") == "on")
            except RewardkitError as error:
                invite = {"error": str(error)}
            else:
                invite = {"name": name, "url": f"{str(request.base_url).rstrip('/')}/invite/{token}"}
        projects = await run_in_threadpool(self.store.projects)
        annotators = await run_in_threadpool(self.store.annotators)
        return self.page(request, "admin.html", projects=projects, annotators=annotators, invite=invite)

    def project_stats(self, name: str) -> dict[str, Any]:
        from rewardkit.label.stats import project_stats

        items, judgements = self.store.items(name), self.store.judgements(name)
        rewards = None
        if self.config.reward_function is not None:
            judged = {j.item_id for j in judgements if j.ranking is not None}
            rewards = self.rewards([item for item in items if item.id in judged])
        stats = project_stats(items, judgements, rewards)
        stats["project"] = name
        stats["reward_model"] = self.config.reward_model_name
        stats["version"] = len(judgements)
        return stats

    def rewards(self, items: Sequence[ItemRow]) -> dict[int, list[float]]:
        """Reward-model scores of these items' responses, each item scored once and kept."""
        with self._reward_lock:
            missing = [item for item in items if item.id not in self._rewards]
            if missing:
                for item_id, values in self.config.reward_function(missing).items():
                    self._rewards[item_id] = list(values)
            return {item.id: self._rewards[item.id] for item in items}

    async def dashboard(self, request: Request) -> Response:
        await self.require_admin(request)
        stats = await run_in_threadpool(self.project_stats, request.path_params["name"])
        return self.page(request, "dashboard.html", stats=stats)

    async def stats_json(self, request: Request) -> Response:
        await self.require_admin(request)
        return JSONResponse(await run_in_threadpool(self.project_stats, request.path_params["name"]))

    async def plot(self, request: Request) -> Response:
        from rewardkit.label.plots import PLOTS, plot

        await self.require_admin(request)
        name, kind = request.path_params["name"], request.path_params["kind"]
        if kind not in PLOTS:
            raise HTTPException(404, f"no plot {kind!r}; plots: {', '.join(PLOTS)}")

        def draw() -> bytes:
            stats = self.project_stats(name)
            key = (name, kind, stats["version"])
            if key not in self._plots:
                self._plots = {k: v for k, v in self._plots.items() if k[:2] != (name, kind)}
                self._plots[key] = plot(kind, stats)
            return self._plots[key]

        return Response(await run_in_threadpool(draw), media_type="image/png")

    async def export(self, request: Request) -> Response:
        from rewardkit.label.export import export_records

        await self.require_admin(request)
        name = request.path_params["name"]
        records = await run_in_threadpool(export_records, self.store, name, False,
                                          request.query_params.get("exclude_unsafe") == "1")
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        filename = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) + ".jsonl"
        return Response(body, media_type="application/x-ndjson",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    # ------------------------------------------------------------------------------------------- errors
    async def error(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            status, message = exc.status_code, exc.detail
            if status in (301, 302, 303, 307):
                return RedirectResponse(exc.headers["Location"], status)
        elif isinstance(exc, NotFoundError):
            status, message = 404, str(exc)
        elif isinstance(exc, ConflictError):
            status, message = 409, str(exc)
        else:
            status, message = 400, str(exc)
        headers = getattr(exc, "headers", None)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status, headers=headers)
        return self.page(request, "error.html", status=status, status_code=status, message=message)


def decision_from_form(form, view: AssignmentView) -> Decision:
    """The ranking page's form -> a Decision. Rankings arrive as one `place-<response index>` per response
    (1 = best, equal places tie); pairwise pages send `choice` (a response index, or "tie")."""
    unsafe, comment = form.get("unsafe") == "on", str(form.get("comment", ""))
    action = form.get("action")
    if action == "skip":
        reason = str(form.get("skip_reason", ""))
        if reason not in SKIP_REASONS:
            raise HTTPException(400, f"choose a skip reason: {', '.join(SKIP_REASONS)}")
        if reason == "other":
            detail = str(form.get("skip_other", "")).strip()
            if not detail:
                raise HTTPException(400, "say why you skip (the 'other' reason needs a few words)")
            reason = f"other: {detail}"
        return Decision(skip_reason=reason, unsafe=unsafe, comment=comment)
    indices = sorted(index for index, _ in view.responses)
    if action == "pair":
        choice = form.get("choice")
        if choice == "tie":
            return Decision(ranking=[indices], unsafe=unsafe, comment=comment)
        if choice not in {str(i) for i in indices}:
            raise HTTPException(400, "choose the better response, or a tie")
        winner = int(choice)
        return Decision(ranking=[winner, 1 - winner], unsafe=unsafe, comment=comment)
    if action != "rank":
        raise HTTPException(400, "unknown action; expected rank, pair or skip")
    places = []
    for index in indices:
        value = form.get(f"place-{index}")
        if value is None or not str(value).isdigit() or not 1 <= int(value) <= view.k:
            raise HTTPException(400, f"every response needs a place from 1 to {view.k} (response {index} has "
                                f"{value!r})")
        places.append(int(value))
    return Decision(ranking=places_to_ranking(places), unsafe=unsafe, comment=comment)


def _int_param(request: Request, name: str) -> int:
    value = request.path_params[name]
    if not value.isdigit():
        raise NotFoundError(f"no such {name}")
    return int(value)


def _safe_next(target: str | None) -> str | None:
    """Only paths on this site: an open redirect would let a link send people elsewhere after logging in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def create_app(store: LabelStore, config: AppConfig | None = None) -> Starlette:
    """The ASGI app for a store; serve it with uvicorn (`rewardkit label serve`)."""
    config = config or AppConfig()
    app = LabelApp(store, config)
    routes = [
        Route("/", app.home),
        Route("/healthz", app.health),
        Route("/login", app.login, methods=["GET", "POST"]),
        Route("/logout", app.logout, methods=["POST"]),
        Route("/invite/{token}", app.invite, methods=["GET", "POST"]),
        Route("/projects", app.projects),
        Route("/projects/{name}/next", app.next_item),
        Route("/assignments/{id}", app.assignment, methods=["GET", "POST"]),
        Route("/api/session", app.api_session),
        Route("/api/projects/{name}/next", app.api_next),
        Route("/api/assignments/{id}", app.api_submit, methods=["POST"]),
        Route("/admin", app.admin, methods=["GET", "POST"]),
        Route("/admin/projects/{name}", app.dashboard),
        Route("/admin/projects/{name}/stats.json", app.stats_json),
        Route("/admin/projects/{name}/plots/{kind}.png", app.plot),
        Route("/admin/projects/{name}/export.jsonl", app.export),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=store.secret(), session_cookie="rewardkit_label",
                   max_age=int(config.session_hours * 3600), same_site="strict", https_only=config.secure_cookies),
    ]
    handlers = {HTTPException: app.error, RewardkitError: app.error}
    starlette = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    starlette.state.label = app
    return starlette
