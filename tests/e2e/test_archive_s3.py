"""An archive on S3: a real S3-compatible server (SeaweedFS) through the minio SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from chronik.adapters.s3 import S3Config
from chronik.demo import blueprints
from chronik.engine import Engine
from tests.conftest import wait_for
from tests.integration.test_archive import (
    RETENTION_DAYS,
    _answers,
    _client,
    _create,
    _dated,
    _finished,
    _partition_of,
    _past_partitions,
    _table_exists,
)


async def test_a_partition_archived_to_s3_answers_from_there(
    make_engine: Callable[..., Any], s3_server: S3Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine: Engine = await make_engine(
        *blueprints, archive_url="s3://chronik-archive/log", retention_days=RETENTION_DAYS, s3=s3_server
    )
    async with _client(engine) as client:
        await _past_partitions(engine)
        _dated(monkeypatch, 30)
        ended = await _create(client, "review", {"amount": 12})
        monkeypatch.undo()
        await wait_for(lambda: _finished(client, ended), within=10)
        old = await _partition_of(engine, ended)
        before = await _answers(client, ended)
        await asyncio.sleep(0.2)

        done = await engine.archiver.archive(old)
        assert done.dropped and done.uri.startswith("s3://chronik-archive/log/" + old)
        assert not await _table_exists(engine, old)
        minio = s3_server.client()
        names = await asyncio.to_thread(
            lambda: sorted(item.object_name for item in minio.list_objects("chronik-archive", prefix="log/"))
        )
        assert [name.rsplit(".", 2)[-2:] for name in names] == [["jsonl", "gz"], ["manifest", "json"]]
        assert await _answers(client, ended) == before
        history = await client.get(f"/api/v1/jobs/{ended}/history", headers={"X-Client-Token": "test-token"})
        assert history.headers["x-chronik-archived"] == "true"
        assert (await engine.replay_job(UUID(ended)))[0] >= 1
