"""The web app over real HTTP (uvicorn on loopback): forms and CSRF, cookies, the login rate limit, who may see
what, safe rendering, the ranking / pairwise / skip forms, invites and the JSON API."""

from __future__ import annotations

import re

import pytest
import requests

from rewardkit.label.simulate import LabelClient
from rewardkit.label.store import ProjectSettings, parse_item
from tests.label.conftest import PASSWORD, add_project

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: requests.Response) -> str:
    return CSRF.search(page.text).group(1)


def login(url: str, name: str, password: str = PASSWORD) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{url}/login")
    response = session.post(f"{url}/login", data={"csrf_token": csrf_of(page), "name": name, "password": password})
    assert response.status_code == 200, response.text
    return session


@pytest.fixture
def app(store, serve):
    """A project of 6 K=4 items (one wanting 2 rankings), ana and bo annotators, boss admin; the app's URL."""
    add_project(store, n=6, overlap_fraction=0.2)
    for name in ("ana", "bo"):
        store.add_annotator(name, password=PASSWORD)
    store.add_annotator("boss", admin=True, password=PASSWORD)
    return serve(store)


@pytest.fixture(params=["sqlite"])
def db_url(request, tmp_path):  # the HTTP layer is the same on both databases; test_store covers PostgreSQL
    yield f"sqlite:///{tmp_path / 'labels.db'}"


def test_cookies_are_httponly_and_samesite_and_pages_have_a_strict_policy(app):
    page = requests.get(f"{app}/login")
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"


def test_every_form_needs_the_csrf_token(app):
    session = requests.Session()
    session.get(f"{app}/login")
    refused = session.post(f"{app}/login", data={"name": "ana", "password": PASSWORD})
    assert refused.status_code == 403 and "CSRF" in refused.text
    forged = session.post(f"{app}/login", data={"csrf_token": "guess", "name": "ana", "password": PASSWORD})
    assert forged.status_code == 403
    ana = login(app, "ana")
    assignment = ana.get(f"{app}/projects/demo/next")
    form = {"action": "rank", **{f"place-{i}": str(i + 1) for i in range(4)}}
    assert ana.post(assignment.url, data=form).status_code == 403  # a form posted from elsewhere
    assert ana.post(f"{app}/logout").status_code == 403
    api = ana.post(f"{app}/api/assignments/1", json={"ranking": [0, 1, 2, 3]})
    assert api.status_code == 403 and "csrf" in api.json()["error"].lower()
    assert ana.post(assignment.url, data={**form, "csrf_token": csrf_of(assignment)}).status_code == 200


def test_login_is_rate_limited(app):
    session = requests.Session()
    for _ in range(5):
        page = session.get(f"{app}/login")
        wrong = session.post(f"{app}/login", data={"csrf_token": csrf_of(page), "name": "ana", "password": "nope"})
        assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    page = session.get(f"{app}/login")
    blocked = session.post(f"{app}/login", data={"csrf_token": csrf_of(page), "name": "ana", "password": PASSWORD})
    assert blocked.status_code == 429 and "Too many failed logins" in blocked.text  # even the right password
    login(app, "bo")  # the same address may still log in to other accounts (up to 4x as many failures)


def test_annotators_cannot_read_others_work_or_admin_pages(app):
    ana, bo = login(app, "ana"), login(app, "bo")
    mine = ana.get(f"{app}/projects/demo/next")
    assert mine.status_code == 200 and "/assignments/" in mine.url
    theirs = bo.get(mine.url)
    assert theirs.status_code == 404 and "Question" not in theirs.text
    for path in ("/admin", "/admin/projects/demo", "/admin/projects/demo/stats.json",
                 "/admin/projects/demo/export.jsonl", "/admin/projects/demo/plots/agreement.png"):
        assert bo.get(f"{app}{path}").status_code == 403, path
    anonymous = requests.get(f"{app}/admin/projects/demo/export.jsonl", allow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    assert requests.get(f"{app}/api/projects/demo/next").status_code == 401
    boss = login(app, "boss")
    assert boss.get(f"{app}/admin/projects/demo").status_code == 200


def test_login_never_redirects_off_site(app):
    session = requests.Session()
    page = session.get(f"{app}/login?next=//evil.example/x")
    response = session.post(f"{app}/login?next=//evil.example/x", allow_redirects=False,
                            data={"csrf_token": csrf_of(page), "name": "ana", "password": PASSWORD})
    assert response.status_code == 303 and response.headers["location"] == "/projects"


def test_prompts_and_responses_are_escaped_and_markdown_is_safe(store, serve):
    evil = {"prompt": "<script>alert('p')</script> **bold**",
            "responses": ["<img src=x onerror=alert(1)>", "[click](javascript:alert(1)) and *it*"]}
    for name, markdown in (("plain", False), ("md", True)):
        store.create_project(ProjectSettings(name, render_markdown=markdown, guidelines="<b>be fair</b>"))
        store.import_items(name, [parse_item(evil, "evil")])
    store.add_annotator("ana", password=PASSWORD)
    url = serve(store)
    ana = login(url, "ana")
    plain = ana.get(f"{url}/projects/plain/next").text
    assert "<script>alert" not in plain and "&lt;script&gt;alert(&#39;p&#39;)&lt;/script&gt;" in plain
    assert "<img src=x" not in plain and "&lt;img src=x onerror=alert(1)&gt;" in plain
    assert "**bold**" in plain and "&lt;b&gt;be fair&lt;/b&gt;" in plain
    md = ana.get(f"{url}/projects/md/next").text
    assert "<strong>bold</strong>" in md and "<em>it</em>" in md  # Markdown is rendered ...
    assert "<script>alert" not in md and "<img src=x" not in md  # ... raw HTML is not
    assert 'href="javascript:' not in md


def test_ranking_pairwise_and_skip_forms(store, serve):
    add_project(store, n=2, k=4, overlap_fraction=0.0)
    store.create_project(ProjectSettings("pairs", overlap_fraction=0.0))
    store.import_items("pairs", [parse_item({"prompt": "p", "responses": ["left", "right"]}, "x"),
                                 parse_item({"prompt": "q", "responses": ["a", "b"]}, "y")])
    store.add_annotator("ana", password=PASSWORD)
    url = serve(store)
    ana = login(url, "ana")

    page = ana.get(f"{url}/projects/demo/next")
    assert 'id="ranking"' in page.text and page.text.count('class="card"') == 4
    form = {"csrf_token": csrf_of(page), "action": "rank", "place-0": "2", "place-1": "1", "place-2": "2",
            "place-3": "4", "unsafe": "on", "comment": "odd one"}
    saved = ana.post(page.url, data=form)
    assert saved.status_code == 200 and "Saved" in saved.text
    again = ana.post(page.url, data=form)  # a double submit stores nothing more
    assert "already submitted" in again.text
    bad = ana.post(saved.url, data={"csrf_token": csrf_of(saved), "action": "rank", "place-0": "9"})
    assert bad.status_code == 400 and "place from 1 to 4" in bad.text
    skipped = ana.post(saved.url, data={"csrf_token": csrf_of(saved), "action": "skip", "skip_reason": "other",
                                        "skip_other": "needs an expert"})
    assert skipped.status_code == 200 and "Nothing left for you in demo" in skipped.text

    pair = ana.get(f"{url}/projects/pairs/next")
    assert 'id="pairform"' in pair.text and "this one is better" in pair.text
    first_shown = int(re.search(r'name="choice" value="(\d)"', pair.text).group(1))
    chosen = ana.post(pair.url, data={"csrf_token": csrf_of(pair), "action": "pair", "choice": str(first_shown)})
    assert chosen.status_code == 200 and "Saved" in chosen.text
    tied = ana.post(chosen.url, data={"csrf_token": csrf_of(chosen), "action": "pair", "choice": "tie"})
    assert tied.status_code == 200 and "Nothing left for you in pairs" in tied.text

    judged = {j.item_id: j for j in store.judgements("demo")}
    first, second = store.items("demo")
    assert judged[first.id].ranking == [1, [0, 2], 3] and judged[first.id].unsafe
    assert judged[second.id].skip_reason == "other: needs an expert"
    pairs = [j.ranking for j in store.judgements("pairs")]
    assert pairs == [[first_shown, 1 - first_shown], [[0, 1]]]


def test_invite_sets_a_password_once(store, serve):
    add_project(store, n=1)
    token = store.add_annotator("newbie")
    url = serve(store)
    session = requests.Session()
    page = session.get(f"{url}/invite/{token}")
    assert page.status_code == 200 and "Welcome, newbie" in page.text
    short = session.post(page.url, data={"csrf_token": csrf_of(page), "password": "short", "password_again": "short"})
    assert short.status_code == 400 and "at least 8" in short.text
    done = session.post(page.url, data={"csrf_token": csrf_of(page), "password": PASSWORD,
                                        "password_again": PASSWORD})
    assert done.status_code == 200 and done.url.endswith("/projects")
    assert requests.get(f"{url}/invite/{token}").status_code == 404  # used up
    login(url, "newbie")
    assert store.new_invite("newbie")
    assert session.get(f"{url}/projects", allow_redirects=False).status_code == 303  # old sessions end


def test_an_admin_invites_from_the_admin_page(app):
    boss = login(app, "boss")
    page = boss.get(f"{app}/admin")
    made = boss.post(f"{app}/admin", data={"csrf_token": csrf_of(page), "name": "cy", "is_admin": "on"})
    link = re.search(r'<code id="invite-url">(http://[^<]+/invite/[^<]+)</code>', made.text)
    assert made.status_code == 200 and link is not None
    taken = boss.post(f"{app}/admin", data={"csrf_token": csrf_of(made), "name": "cy"})
    assert "already exists" in taken.text
    welcome = requests.get(link.group(1))
    assert welcome.status_code == 200 and "Welcome, cy" in welcome.text


def test_the_json_api_is_what_programs_use(app):
    client = LabelClient(app)
    client.login("ana", PASSWORD)
    task = client.next("demo")
    assert task["k"] == 4 and sorted(r["index"] for r in task["responses"]) == [0, 1, 2, 3]
    assert client.submit(task["assignment"], ranking=[[3, 2], 1, 0], unsafe=True) > 0
    status, body = client.request("POST", f"/api/assignments/{task['assignment']}", b'{"ranking": [0,1,2,3]}',
                                  {"Content-Type": "application/json", "X-CSRF-Token": client.csrf})
    assert status == 409 and b"already submitted" in body
    task = client.next("demo")
    for payload, expected in ((b"[1]", b"JSON object"), (b"{oops", b"not JSON"), (b'{"rank": [0]}', b"unknown"),
                              (b'{"ranking": [0, 0, 1, 2]}', b"appears twice"), (b"{}", b"either a ranking")):
        status, body = client.request("POST", f"/api/assignments/{task['assignment']}", payload,
                                      {"Content-Type": "application/json", "X-CSRF-Token": client.csrf})
        assert status == 400 and expected in body, (payload, body)
    assert client.request("GET", "/api/projects/nope/next")[0] == 404
