"""The typed client of chronik's client API (``/api/v1``), async and sync, over httpx.

```python
from chronik import Client

with Client("http://127.0.0.1:8080", token="...") as client:
    job = client.create("orders", {"quantity": 4}, idempotency_key="order-17")
    done = job.wait(timeout=60)  # long polls that answer when the job ends: no polling
    print(done.status, done.result)
```

``AsyncClient`` is the same with ``await``. Results are msgspec Structs (``JobView``,
``JobPage``, ``HistoryEntry``, frozen); every error is a ``ChronikClientError`` with ``code``,
``message`` and ``status``. Importing this package loads httpx, msgspec and chronik's pure
core, not the server. docs/client.md has the whole of it.
"""

from __future__ import annotations

from ._async import AsyncClient, AsyncJobHandle
from ._calls import ENDED_STATUSES, JobId
from ._errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ChronikClientError,
    ConflictError,
    JobFailedError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UnprocessableError,
    WaitTimeoutError,
)
from ._sync import Client, JobHandle
from ._views import ApprovalView, ErrorInfo, ForkOrigin, HistoryEntry, JobPage, JobView, TaskView

__all__ = [
    "ENDED_STATUSES",
    "ApiError",
    "ApprovalView",
    "AsyncClient",
    "AsyncJobHandle",
    "AuthenticationError",
    "BadRequestError",
    "ChronikClientError",
    "Client",
    "ConflictError",
    "ErrorInfo",
    "ForkOrigin",
    "HistoryEntry",
    "JobFailedError",
    "JobHandle",
    "JobId",
    "JobPage",
    "JobView",
    "NetworkError",
    "NotFoundError",
    "RateLimitedError",
    "ServerError",
    "TaskView",
    "UnprocessableError",
    "WaitTimeoutError",
]
