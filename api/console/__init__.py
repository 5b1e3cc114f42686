"""The web console at ``/console``: server-rendered pages (Jinja) with HTMX for partial updates.

Every asset ships inside the package (``static/``): no CDN, no build step, it works offline.
Pages see what the signed-in client may see through the API: its own jobs, or all for an admin.
Each page module holds its routes; ``console_parts`` gathers them behind the session check.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Router
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from chronik.adapters.config import ClientEntry

from ..guards import ClientDirectory
from .filters import install_filters
from .pages import PAGES
from .session import load_session, sign_in_routes

__all__ = ["console_parts"]

_HERE = Path(__file__).parent


def console_parts(
    clients: Mapping[str, ClientEntry],
) -> tuple[list[Any], TemplateConfig[JinjaTemplateEngine]]:
    """The console's route handlers and the template engine the app renders them with."""
    environment = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        # Every value is escaped: job data with <script> or HTML shows as text, never as markup.
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    install_filters(environment)
    signed_in = Router(path="/console", route_handlers=list(PAGES), before_request=load_session)
    static = create_static_files_router(
        path="/console/static", directories=[_HERE / "static"], name="console_static"
    )
    handlers: list[Any] = [*sign_in_routes(ClientDirectory(clients)), signed_in, static]
    return handlers, TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))
