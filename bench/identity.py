"""Measurement 5: token requests and Graph calls for page views, counted by the fake identity
server, for the app and for the naive approach, with both kinds of B2C account."""

from __future__ import annotations

from typing import Any

import requests

from bench.client import Browser, new_user
from bench.report import Figure, Target
from devstack.fake_identity.client import FakeIdentityClient

KINDS = ("local_with_emails_claim", "local")  # the ID token carries `emails` / Graph is needed
COUNTED = ("client_credentials_token", "graph")


def _delta(fake: FakeIdentityClient, before: dict[str, int]) -> dict[str, int]:
    now = fake.counters()
    return {name: now[name] - before[name] for name in COUNTED}


def app_views(app_url: str, fake: FakeIdentityClient, *, users: int, views: int) -> dict[str, Any]:
    """Per kind: sign `users` users in, then `views` page views (GET / then the page's
    GET /api/me/email) round-robin. Accounts with the claim go first, so the token the app
    fetches for the others is not already in its cache."""
    result: dict[str, Any] = {"users": {}}
    for kind in KINDS:
        people = [new_user(fake, kind) for _ in range(users)]
        result["users"][kind] = people
        before = fake.counters()
        browsers = [Browser(app_url, fake.base_url).sign_in(user) for user in people]
        sources = set()
        for view in range(views):
            browser = browsers[view % users]
            page = browser.get("/", headers={"Accept": "text/html"})
            email = browser.get("/api/me/email", headers={"Accept": "application/json"})
            if page.status_code != 200 or email.status_code != 200:
                raise RuntimeError(f"page view failed: {page.status_code} / {email.status_code} {email.text}")
            sources.add(email.json()["source"])
        result[kind] = {**_delta(fake, before), "sources": sorted(sources)}
        for browser in browsers:
            browser.close()
    return result


def naive_views(
    naive_url: str, fake: FakeIdentityClient, people: dict[str, list[dict[str, Any]]], *, views: int
) -> dict[str, Any]:
    """The same views against the naive app: GET / then the article's /get-user-email/<id>.
    Its one token was fetched at import, before this runs; the caller counts it."""
    result: dict[str, Any] = {}
    http = requests.Session()
    for kind in KINDS:
        before = fake.counters()
        users = people[kind]
        for view in range(views):
            user = users[view % len(users)]
            page = http.get(f"{naive_url}/", timeout=30)
            email = http.get(f"{naive_url}/get-user-email/{user['oid']}", timeout=30)
            if page.status_code != 200 or email.status_code != 200:
                raise RuntimeError(f"naive page view failed: {page.status_code} / {email.status_code}")
        result[kind] = _delta(fake, before)
    http.close()
    return result


def figures(
    app: dict[str, Any], naive: dict[str, Any], naive_start_tokens: int, *, users: int, views: int
) -> list[Figure]:
    claim, graph = app["local_with_emails_claim"], app["local"]
    n_claim, n_graph = naive["local_with_emails_claim"], naive["local"]
    views_text = f"{views} views by {users} users"
    naive_tokens = (
        naive_start_tokens + n_claim["client_credentials_token"] + n_graph["client_credentials_token"]
    )
    note = "1 gunicorn worker: the rule is one app-only token per process per token lifetime"
    return [
        Figure(
            5,
            "identity_tokens_graph_users",
            f"{views_text}, no `emails` claim: token requests",
            graph["client_credentials_token"],
            "",
            Target("≤", 1),
            {"naive (at import, for every view after)": naive_tokens},
            note=note,
        ),
        Figure(
            5,
            "identity_graph_calls_graph_users",
            f"{views_text}, no `emails` claim: Graph calls",
            graph["graph"],
            "",
            Target("≤", users),
            {"naive": n_graph["graph"], "sources": "/".join(graph["sources"])},
            note="then served from the PostgreSQL email cache",
        ),
        Figure(
            5,
            "identity_tokens_claim_users",
            f"{views_text}, `emails` claim: token requests",
            claim["client_credentials_token"],
            "",
            Target("≤", 1),
            {"naive": naive_start_tokens},
            note=note,
        ),
        Figure(
            5,
            "identity_graph_calls_claim_users",
            f"{views_text}, `emails` claim: Graph calls",
            claim["graph"],
            "",
            Target("=", 0),
            {"naive": n_claim["graph"], "sources": "/".join(claim["sources"])},
        ),
    ]
