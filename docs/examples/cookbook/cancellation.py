"""Cancellation: a video is published after a transcoding child job, and either can be cancelled.

Cancelling the ``publish_video`` job cancels its ``transcode`` child and withdraws
the child's task (a worker running it is told to stop). Cancelling only the child
sends the parent down its ``cancelled`` transition. Run it with the cookbook
(docs/blueprints.md) and ``POST /api/v1/jobs/videos``.
"""

from __future__ import annotations

from typing import Any

from chronik import Actions, Blueprint

transcode = Blueprint("transcode")


@transcode.handler_for("encode", is_start=True)
async def encode(video: str, actions: Actions) -> None:
    actions.dispatch_task(
        "transcode",
        {"video": video, "segments": 30},
        transitions={"success": "encoded"},
        timeout_seconds=3600,
    )


@transcode.handler_for("encoded", is_end=True)
async def encoded(encoded: str, state_history: dict[str, Any]) -> None:
    state_history["encoded"] = {"encoded": encoded}


publish = Blueprint("publish_video", api_endpoint="videos")


@publish.handler_for("transcode", is_start=True)
async def start_transcode(video: str, actions: Actions) -> None:
    actions.run_blueprint(
        "transcode",
        {"video": video},
        transitions={"success": "published", "failure": "failed", "cancelled": "withdrawn"},
    )


@publish.handler_for("published", is_end=True)
async def published(encoded: str, state_history: dict[str, Any]) -> None:
    state_history["published"] = {"url": f"https://videos.example.com/{encoded}"}


@publish.handler_for("withdrawn", is_end=True)
async def withdrawn(state_history: dict[str, Any]) -> None:
    state_history["withdrawn"] = {"published": False}


@publish.handler_for("failed", is_end=True, is_failure=True)
async def failed(state_history: dict[str, Any]) -> None:
    state_history["failed"] = {"published": False}


blueprints = [publish, transcode]
