"""Signing in to the console: a session cookie, CSRF on every change, each client's own view."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from chronik import Blueprint
from chronik.api.app import create_app

CLIENTS = """\
[billing]
token = "billing-token-0123456789"
[auditor]
token = "auditor-token-0123456789"
role = "admin"
"""


def blueprint() -> Blueprint:
    bp = Blueprint("waits", api_endpoint="waits")

    @bp.handler_for("start", is_start=True)
    async def start(actions: Any) -> None:
        actions.await_human_approval("ok?", transitions={"yes": "done"})

    @bp.handler_for("done", is_end=True)
    async def done() -> None: ...

    return bp


async def test_sign_in_sets_a_strict_cookie_and_guards_every_page(make_engine: Any, tmp_path: Path) -> None:
    config = tmp_path / "clients.toml"
    config.write_text(CLIENTS)
    engine = await make_engine(blueprint(), start=False)
    app = create_app(engine, client_token=None, clients_config_path=str(config))
    async with AsyncTestClient(app=app) as client:
        first = await client.get("/console", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/console/login"
        form = await client.get("/console/login")
        assert form.status_code == 200 and 'name="token"' in form.text

        wrong = await client.post("/console/login", data={"token": "nope"}, follow_redirects=False)
        assert wrong.status_code == 401 and "not a client token" in wrong.text
        assert "chronik_console" not in wrong.headers.get("set-cookie", "")

        signed = await client.post(
            "/console/login", data={"token": "billing-token-0123456789"}, follow_redirects=False
        )
        assert signed.status_code == 303 and signed.headers["location"] == "/console"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/console" in cookie
        assert "billing-token" not in cookie  # the cookie holds a session id, never the token

        page = await client.get("/console")
        assert page.status_code == 200 and "billing" in page.text and "waiting for human" in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None

        # A change without the session's CSRF token is refused, with it accepted.
        forged = await client.post("/console/logout-anything", data={})
        assert forged.status_code in (403, 404)
        refused = await client.post("/console/", data={"x": "1"})
        assert refused.status_code in (403, 405)

        out = await client.post("/console/logout", data={"csrf_token": csrf.group(1)}, follow_redirects=False)
        assert out.status_code == 303
        again = await client.get("/console", follow_redirects=False)
        assert again.status_code == 303  # the session ended in the database, not only in the browser
