"""The batch messages of the worker protocol (``core/wire.py``): read entry by entry, so a bad entry
is refused in its place; the answers keep the single route's shapes."""

from __future__ import annotations

from uuid import UUID

import msgspec
import pytest

from chronik.core.errors import Forbidden, InvalidInput
from chronik.core.wire import (
    ReportedResult,
    ResultAnswer,
    ResultsAnswer,
    ResultsBody,
    TaskMessage,
    TasksAnswer,
)

TASK = f"{UUID(int=1)}:2"


def test_each_entry_is_read_on_its_own() -> None:
    body = msgspec.convert(
        {
            "results": [
                {"task_id": TASK, "data": {"x": 1}},
                {"status": "success"},
                {"task_id": "not-ours"},
                {"task_id": TASK, "worker_id": "someone-else"},
                {
                    "task_id": TASK,
                    "worker_id": "w1",
                    "status": "failure",
                    "error": {"code": "PERMANENT_ERROR"},
                },
                "a string",
            ],
            "timestamp": 1,
        },
        ResultsBody,
    )
    first, missing, foreign_id, other_worker, failed, string = body.reports("w1")
    assert isinstance(first, ReportedResult) and first.ref.task_id == UUID(int=1) and first.ref.attempt == 2
    assert first.worker_id == "w1" and first.data == {"x": 1}
    assert isinstance(missing, InvalidInput) and "results[1]" in missing.message
    assert isinstance(foreign_id, InvalidInput) and "not a task id of this orchestrator" in foreign_id.message
    assert isinstance(other_worker, Forbidden) and "results[3]" in other_worker.message
    assert isinstance(failed, ReportedResult) and failed.error is not None
    assert failed.error.code == "PERMANENT_ERROR"
    assert isinstance(string, InvalidInput) and "results[5]" in string.message


@pytest.mark.parametrize("count", [0, 1001])
def test_a_batch_has_one_to_a_thousand_entries(count: int) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"results": [{"task_id": TASK}] * count}, ResultsBody)


def test_answers_keep_the_single_routes_shapes() -> None:
    task = TaskMessage(job_id="j", task_id=TASK, type="work")
    assert msgspec.json.decode(msgspec.json.encode(TasksAnswer(tasks=[task])))["tasks"][0]["task_id"] == TASK
    answers = ResultsAnswer(
        results=[
            ResultAnswer(status="accepted"),
            ResultAnswer(status="refused", reason="TASK_NOT_HELD", message="not yours"),
        ]
    )
    assert msgspec.json.decode(msgspec.json.encode(answers)) == {
        "results": [
            {"status": "accepted"},
            {"status": "refused", "reason": "TASK_NOT_HELD", "message": "not yours"},
        ]
    }
