"""Signing in to the console: a session cookie, a CSRF token on every form, the client it is.

The browser holds only a random session id, in a cookie that is HttpOnly (no script reads it),
SameSite=Strict (no other site's page sends it) and Secure over HTTPS; the client token is typed
into the sign-in form once and never travels in a URL. Every request that changes anything must
also carry the session's CSRF token (the ``csrf_token`` form field, or the ``X-CSRF-Token``
header that the layout sets for every HTMX request).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from chronik._runtime.console_sessions import SESSION_SECONDS, ConsoleSession
from chronik.core.errors import Forbidden, RateLimited

from ..guards import ClientDirectory
from ..ports import Orchestrator

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "LOGIN_PATH",
    "load_session",
    "owner_in",
    "page",
    "session_of",
    "sign_in_routes",
]

COOKIE = "chronik_console"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_PATH = "/console/login"
_FAILED_SIGN_INS_PER_MINUTE = 20
"""Wrong tokens per minute from one address before the sign-in form answers 429."""


def session_of(request: Request[Any, Any, Any]) -> ConsoleSession:
    """The signed-in session of a console request (``load_session`` put it there)."""
    session: ConsoleSession = request.state.console_session
    return session


def owner_in(session: ConsoleSession) -> str | None:
    """Whose jobs the session may see and act on: its client's, or every job (None) for an admin."""
    return None if session.is_admin else session.client


def page(request: Request[Any, Any, Any], template: str, **context: Any) -> Template:
    """A console page: ``template`` with ``context``, plus the session and its CSRF token."""
    session = session_of(request)
    return Template(
        template_name=template,
        context={"session": session, "csrf_token": session.csrf_token, "path": request.url.path, **context},
    )


async def load_session(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """``before_request`` of every signed-in console route: find the session, check the CSRF token.

    Without a live session a page is sent to the sign-in form (an HTMX request is told to go
    there as a whole page); a change without the session's CSRF token is 403.
    """
    engine: Orchestrator = request.app.state["engine"]
    session_id = request.cookies.get(COOKIE)
    session = await engine.console_sessions.find(session_id) if session_id else None
    if session is None:
        if request.headers.get("HX-Request"):
            return Response(None, status_code=204, headers={"HX-Redirect": LOGIN_PATH})
        return Redirect(LOGIN_PATH, status_code=HTTP_303_SEE_OTHER)
    request.state.console_session = session
    if request.method not in ("GET", "HEAD"):
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and "form" in request.headers.get("content-type", ""):
            sent = (await request.form()).get("csrf_token")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise Forbidden("this form is stale or was not sent by the console; reload the page")
    return None


def sign_in_routes(clients: ClientDirectory) -> list[Any]:
    """The sign-in form, signing in and signing out (these need no session)."""

    @get(LOGIN_PATH, include_in_schema=False)
    async def sign_in_form() -> Template:
        return Template(template_name="login.html", context={"error": None})

    @post(LOGIN_PATH, include_in_schema=False, status_code=HTTP_303_SEE_OTHER)
    async def sign_in(
        request: Request[Any, Any, Any],
        state: State,
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        engine: Orchestrator = state["engine"]
        found = clients.identify(data.get("token", "").strip())
        if found is None:
            address = request.client.host if request.client else "unknown"
            try:
                await engine.check_rate(f"console-sign-in:{address}", _FAILED_SIGN_INS_PER_MINUTE, 60.0)
            except RateLimited:
                error = "Too many wrong tokens from this address; wait a minute."
                return Template(template_name="login.html", context={"error": error}, status_code=429)
            error = "That is not a client token this orchestrator knows."
            return Template(template_name="login.html", context={"error": error}, status_code=401)
        name, entry = found
        session_id, _session = await engine.console_sessions.open(name, is_admin=entry.role == "admin")
        redirect = Redirect("/console", status_code=HTTP_303_SEE_OTHER)
        redirect.cookies.append(
            Cookie(
                key=COOKIE,
                value=session_id,
                path="/console",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                max_age=int(SESSION_SECONDS),
            )
        )
        return redirect

    @post("/console/logout", include_in_schema=False, status_code=HTTP_303_SEE_OTHER)
    async def sign_out(request: Request[Any, Any, Any], state: State) -> Response[Any]:
        engine: Orchestrator = state["engine"]
        session_id = request.cookies.get(COOKIE)
        if session_id:
            session = await engine.console_sessions.find(session_id)
            sent = (await request.form()).get("csrf_token")
            if (
                session is not None
                and isinstance(sent, str)
                and hmac.compare_digest(sent.encode(), session.csrf_token.encode())
            ):
                await engine.console_sessions.close(session_id)
        redirect = Redirect(LOGIN_PATH, status_code=HTTP_303_SEE_OTHER)
        redirect.cookies.append(Cookie(key=COOKIE, value="", path="/console", max_age=0, httponly=True))
        return redirect

    return [sign_in_form, sign_in, sign_out]
