"""Durable timers: welcome a trial user now, remind them days later, across restarts.

Run it with the cookbook (docs/blueprints.md) and ``POST /api/v1/jobs/trials``.
"""

from __future__ import annotations

from typing import Any

from chronik import Actions, Blueprint

bp = Blueprint("trial", api_endpoint="trials")

ONE_WEEK = 7 * 24 * 3600


@bp.handler_for("welcome", is_start=True)
async def welcome(email: str, actions: Actions) -> None:
    actions.dispatch_task("send_email", {"to": email, "template": "welcome"}, transitions={"success": "wait"})


@bp.handler_for("wait")
async def wait(initial_data: dict[str, Any], actions: Actions) -> None:
    actions.sleep(initial_data.get("remind_after_seconds", ONE_WEEK), then="remind")


@bp.handler_for("remind")
async def remind(email: str, actions: Actions) -> None:
    actions.dispatch_task(
        "send_email", {"to": email, "template": "trial_ends_soon"}, transitions={"success": "reminded"}
    )


@bp.handler_for("reminded", is_end=True)
async def reminded(email: str, last_email: str, state_history: dict[str, Any]) -> None:
    state_history["reminded"] = {"email": email, "template": last_email}
