"""The blueprint DSL: a state machine of handlers, validated when registered.

```python
bp = Blueprint("orders", api_endpoint="orders")

@bp.handler_for("start", is_start=True)
async def start(initial_data, actions):
    actions.transition_to("done")

@bp.handler_for("done", is_end=True)
async def done():
    ...
```

Transitions are found by reading each handler's source for literal
``actions.transition_to("state")`` calls, as Avtomatika does; a handler whose
targets are computed at run time declares them with ``transitions=(...)``
(see ``core.edges``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal, TypeVar

import msgspec

from .actions import check_timeout
from .conditions import Condition, parse_condition
from .edges import declared_or_found
from .errors import ActionError, BlueprintError
from .injection import Parameter, plan_arguments

__all__ = [
    "Blueprint",
    "ConditionalHandler",
    "StateSpec",
    "normalize_endpoint",
]

F = TypeVar("F", bound=Callable[..., Any])

_ENDPOINT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class ConditionalHandler:
    """A handler of a state that runs instead of the default one when its condition holds."""

    condition: Condition
    handler: Callable[..., Any]
    parameters: tuple[Parameter, ...]
    transitions: frozenset[str] | None
    edges: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class StateSpec:
    """One state of a blueprint and its handler."""

    name: str
    handler: Callable[..., Any]
    parameters: tuple[Parameter, ...]
    is_start: bool
    is_end: bool
    is_failure: bool
    transitions: frozenset[str] | None
    """The states the handler can move to; ``None`` when they cannot be known statically."""
    edges: tuple[tuple[str, str], ...] = ()
    """The same, as (target, label) pairs for drawing: the label names a task and its status."""
    timeout_seconds: float | None = None
    """How long a job may stay in this state; past it, it moves to ``on_timeout`` or fails."""
    on_timeout: str | None = None
    is_aggregator: bool = False
    """Registered with ``aggregator_for``: the fan-in state of a ``dispatch_parallel``."""


def normalize_endpoint(endpoint: str, *, blueprint: str) -> str:
    """The one path segment under ``/api/v1/jobs/`` that creates jobs of a blueprint.

    Avtomatika writes endpoints as ``/jobs/name``; that form is accepted and reduced to ``name``.
    """
    segment = endpoint.strip().strip("/")
    segment = segment.removeprefix("jobs/")
    if not _ENDPOINT.match(segment):
        raise BlueprintError(
            f"blueprint {blueprint!r}: api_endpoint {endpoint!r} must be one path segment of letters, "
            "digits, '_', '.' or '-' (for example 'orders')"
        )
    return segment


def _input_schema(
    blueprint: str, schema: object
) -> tuple[type[msgspec.Struct] | dict[str, Any] | None, dict[str, Any] | None]:
    """``input_schema`` as kept (a Struct type, or a private copy of the dict) and as JSON Schema."""
    where = f"blueprint {blueprint!r}: input_schema"
    if schema is None:
        return None, None
    if isinstance(schema, type) and issubclass(schema, msgspec.Struct):
        if schema.__struct_config__.array_like:
            raise BlueprintError(f"{where}: initial_data is a JSON object; the Struct cannot be array_like")
        try:
            return schema, msgspec.json.schema(schema)
        except (TypeError, ValueError) as exc:
            raise BlueprintError(f"{where}: {schema.__name__} has no JSON Schema: {exc}") from None
    if isinstance(schema, Mapping):
        try:
            # A private copy (later changes to the caller's dict change nothing), and proof it is JSON.
            copied: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(dict(schema)))
        except (TypeError, msgspec.EncodeError) as exc:
            raise BlueprintError(f"{where}: a JSON Schema dict must be JSON: {exc}") from None
        return copied, copied
    raise BlueprintError(
        f"{where} must be a msgspec.Struct type or a JSON Schema dict, got {type(schema).__name__} {schema!r}"
    )


class Blueprint:
    """A named state machine whose handlers drive jobs from a start state to an end state."""

    def __init__(
        self,
        name: str,
        api_endpoint: str | None = None,
        *,
        description: str = "",
        data_stores: dict[str, Any] | None = None,
        timeout_seconds: float | None = None,
        input_schema: type[msgspec.Struct] | Mapping[str, Any] | None = None,
        retention_days: float | Literal["forever"] | None = None,
    ) -> None:
        """A blueprint named ``name``, creating jobs at ``POST /api/v1/jobs/{api_endpoint}``.

        ``data_stores`` are objects its handlers share (a cache, a client), injected as
        ``data_stores`` (``data_stores.cache``). They live in the process, not in the
        log: whatever a handler derives from them and wants kept goes into state_history.

        ``timeout_seconds`` is how long a job of this blueprint may live; past it, the job
        fails with ``JOB_TIMEOUT`` wherever it is (a client may set its own per job).

        ``input_schema`` is the shape of ``initial_data``: a ``msgspec.Struct`` type or a
        JSON Schema (a dict). Every job is checked against it when it is created (over
        HTTP, from Python, by a schedule or as a child), and refused with
        ``INVALID_INPUT_ERROR`` naming the field; the job keeps ``initial_data`` as sent.

        ``retention_days`` is how long this blueprint's jobs stay in the hot tables after they
        end, instead of ``RETENTION_DAYS`` (``"forever"``: they never leave); then their
        history is archived and still answers from the archive.
        """
        if not isinstance(name, str) or not name.strip():
            raise BlueprintError(f"a blueprint needs a non-empty name, got {name!r}")
        self.name = name
        self.api_endpoint = normalize_endpoint(api_endpoint or name, blueprint=name)
        self.description = description
        self.states: dict[str, StateSpec] = {}
        self.conditions: dict[str, list[ConditionalHandler]] = {}
        """Conditional handlers per state, in the order registered: the first that matches runs."""
        stores = dict(data_stores or {})
        bad = [key for key in stores if not (isinstance(key, str) and key.isidentifier())]
        if bad:
            raise BlueprintError(f"blueprint {name!r}: data store names must be identifiers, got {bad!r}")
        self.data_stores = SimpleNamespace(**stores)
        try:
            check_timeout(f"blueprint {name!r}", timeout_seconds)
        except ActionError as exc:
            raise BlueprintError(exc.message) from None
        self.timeout_seconds = timeout_seconds
        if (
            retention_days is not None
            and retention_days != "forever"
            and not (isinstance(retention_days, int | float) and retention_days > 0)
        ):
            raise BlueprintError(
                f'blueprint {name!r}: retention_days must be a positive number of days or "forever", '
                f"got {retention_days!r}"
            )
        self.retention_days = retention_days
        """How long ended jobs stay before they are archived; None: ``RETENTION_DAYS``."""
        kept, as_json_schema = _input_schema(name, input_schema)
        self.input_schema = kept
        """The shape of ``initial_data``: the Struct type or a copy of the JSON Schema; ``None``: any."""
        self.input_json_schema = as_json_schema
        """``input_schema`` as JSON Schema (a Struct's by ``msgspec.json.schema``): the OpenAPI shows it."""

    def __repr__(self) -> str:
        return f"Blueprint({self.name!r}, api_endpoint={self.api_endpoint!r}, states={list(self.states)})"

    def handler_for(
        self,
        state: str,
        *,
        is_start: bool = False,
        is_end: bool = False,
        is_failure: bool = False,
        transitions: Iterable[str] | None = None,
        timeout_seconds: float | None = None,
        on_timeout: str | None = None,
    ) -> _Registration:
        """Register the handler of ``state``; ``.when("condition")`` registers a conditional one.

        Args:
            state: The state's name.
            is_start: Jobs start here; exactly one state is the start.
            is_end: Reaching this state ends the job (after its handler runs).
            is_failure: With ``is_end``: a job ending here has failed rather than finished.
            transitions: The states the handler may move to, when its source does not
                show them as literal ``actions.transition_to("...")`` calls.
            timeout_seconds: How long a job may stay in this state, waiting on whatever
                its handler started (a task, a fan-out, a person, a child job); the
                deadline is a row in PostgreSQL and survives restarts.
            on_timeout: The state a job moves to when that deadline passes; without it
                the job fails with ``STATE_TIMEOUT``.

        ``@bp.handler_for("route").when("initial_data.total > 100")`` registers a handler
        that runs instead of the state's plain (default) handler when the condition
        holds; conditions are tried in the order registered (see ``core.conditions``).
        """
        return self._registration(
            state,
            is_start=is_start,
            is_end=is_end,
            is_failure=is_failure,
            transitions=transitions,
            timeout_seconds=timeout_seconds,
            on_timeout=on_timeout,
            is_aggregator=False,
        )

    def aggregator_for(
        self,
        state: str,
        *,
        transitions: Iterable[str] | None = None,
        timeout_seconds: float | None = None,
        on_timeout: str | None = None,
    ) -> _Registration:
        """Register the fan-in handler of ``state``, where ``dispatch_parallel(aggregate_into=state)`` leads.

        It runs once, after every branch is in, and may ask for ``aggregation_results``.
        Otherwise it is a handler like any other: it takes one action, usually a
        ``transition_to`` an end state.
        """
        return self._registration(
            state,
            is_start=False,
            is_end=False,
            is_failure=False,
            transitions=transitions,
            timeout_seconds=timeout_seconds,
            on_timeout=on_timeout,
            is_aggregator=True,
        )

    def _registration(
        self,
        state: str,
        *,
        is_start: bool,
        is_end: bool,
        is_failure: bool,
        transitions: Iterable[str] | None,
        timeout_seconds: float | None,
        on_timeout: str | None,
        is_aggregator: bool,
    ) -> _Registration:
        flags = is_start or is_end or is_failure or timeout_seconds is not None or on_timeout is not None

        def when(expression: str) -> Callable[[F], F]:
            where = f"blueprint {self.name!r}, state {state!r}"
            if flags:
                raise BlueprintError(
                    f"{where}: set is_start/is_end/is_failure/timeout_seconds/on_timeout on the plain "
                    "handler, not on .when()"
                )
            condition = parse_condition(expression, where=where)

            def register_conditional(func: F) -> F:
                if not callable(func):
                    raise BlueprintError(f"{where}: the handler must be callable, got {func!r}")
                edges = declared_or_found(transitions, func)
                self.conditions.setdefault(state, []).append(
                    ConditionalHandler(
                        condition=condition,
                        handler=func,
                        parameters=plan_arguments(func, where=where),
                        transitions=None if edges is None else frozenset(t for t, _label in edges),
                        edges=tuple(
                            (t, f"when {expression}" + (f", {label}" if label else ""))
                            for t, label in edges or ()
                        ),
                    )
                )
                return func

            return register_conditional

        def register(func: F) -> F:
            where = f"blueprint {self.name!r}, state {state!r}"
            if state in self.states:
                raise BlueprintError(f"{where}: a handler is already registered for this state")
            if is_failure and not is_end:
                raise BlueprintError(f"{where}: is_failure=True needs is_end=True")
            try:
                check_timeout(where, timeout_seconds)
            except ActionError as exc:
                raise BlueprintError(exc.message) from None
            if on_timeout is not None and timeout_seconds is None:
                raise BlueprintError(f"{where}: on_timeout needs timeout_seconds")
            if on_timeout is not None and (not isinstance(on_timeout, str) or not on_timeout):
                raise BlueprintError(f"{where}: on_timeout must name a state, got {on_timeout!r}")
            if not callable(func):
                raise BlueprintError(f"{where}: the handler must be callable, got {func!r}")
            edges = declared_or_found(transitions, func)
            if edges is not None and on_timeout is not None:
                edges = (*edges, (on_timeout, f"timeout {timeout_seconds:g} s"))
            targets = None if edges is None else frozenset(target for target, _label in edges)
            self.states[state] = StateSpec(
                name=state,
                handler=func,
                parameters=plan_arguments(func, where=where),
                is_start=is_start,
                is_end=is_end,
                is_failure=is_failure,
                transitions=targets,
                edges=edges or (),
                timeout_seconds=timeout_seconds,
                on_timeout=on_timeout,
                is_aggregator=is_aggregator,
            )
            return func

        return _Registration(register, when)

    def handler_of(
        self, state: str, roots: dict[str, Any]
    ) -> tuple[Callable[..., Any], tuple[Parameter, ...]] | None:
        """The handler to run in ``state``: the first conditional one that matches, else the default."""
        for conditional in self.conditions.get(state, ()):
            if conditional.condition.matches(roots):
                return conditional.handler, conditional.parameters
        spec = self.states.get(state)
        return None if spec is None else (spec.handler, spec.parameters)

    def routes(self, state: str) -> list[frozenset[str] | None]:
        """The transitions of every handler of ``state`` (default first): what validation checks."""
        spec = self.states[state]
        return [spec.transitions, *(c.transitions for c in self.conditions.get(state, ()))]

    @property
    def start_state(self) -> str | None:
        """The state every job of this blueprint starts in."""
        return next((spec.name for spec in self.states.values() if spec.is_start), None)

    @property
    def end_states(self) -> frozenset[str]:
        """The states that end a job."""
        return frozenset(spec.name for spec in self.states.values() if spec.is_end)

    def validate(self) -> tuple[str, ...]:
        """Check the state machine; raise ``BlueprintError`` naming the state at fault.

        Returns warnings about what could not be checked (handlers whose targets are unknown).
        """
        for state in self.conditions:
            if state not in self.states:
                raise BlueprintError(
                    f"blueprint {self.name!r}, state {state!r}: has conditional handlers but no plain one; "
                    f"add @bp.handler_for({state!r}) without .when() as the default"
                )
        starts = [spec.name for spec in self.states.values() if spec.is_start]
        if not starts:
            raise BlueprintError(
                f"blueprint {self.name!r} has no start state; mark one handler with is_start=True"
            )
        if len(starts) > 1:
            raise BlueprintError(
                f"blueprint {self.name!r} has {len(starts)} start states ({', '.join(map(repr, starts))}); "
                "exactly one handler may have is_start=True"
            )
        for spec in self.states.values():
            if spec.on_timeout is not None and spec.on_timeout not in self.states:
                raise BlueprintError(
                    f"blueprint {self.name!r}, state {spec.name!r}: on_timeout names unknown state "
                    f"{spec.on_timeout!r}"
                )
        warnings: list[str] = []
        for spec, transitions in ((s, t) for s in self.states.values() for t in self.routes(s.name)):
            if transitions is None:
                warnings.append(
                    f"blueprint {self.name!r}, state {spec.name!r}: its transitions could not be read from "
                    "the handler's source; pass transitions=(...) to handler_for to have them checked"
                )
                continue
            for target in sorted(transitions):
                if target not in self.states:
                    raise BlueprintError(
                        f"blueprint {self.name!r}, state {spec.name!r}: transition to unknown state "
                        f"{target!r}; known states are {', '.join(map(repr, self.states))}"
                    )
            if spec.is_end and transitions:
                raise BlueprintError(
                    f"blueprint {self.name!r}, state {spec.name!r}: an end state cannot transition "
                    f"(it moves to {', '.join(map(repr, sorted(transitions)))})"
                )
            if not spec.is_end and not transitions:
                raise BlueprintError(
                    f"blueprint {self.name!r}, state {spec.name!r}: the handler takes no action; call "
                    "actions.transition_to(...) or mark the state is_end=True"
                )
        if not warnings:
            self._check_reachable(starts[0])
        return tuple(warnings)

    def _check_reachable(self, start: str) -> None:
        reached = {start}
        pending = [start]
        while pending:
            for target in (t for targets in self.routes(pending.pop()) for t in targets or ()):
                if target not in reached:
                    reached.add(target)
                    pending.append(target)
        for name in self.states:
            if name not in reached:
                raise BlueprintError(
                    f"blueprint {self.name!r}, state {name!r}: unreachable from the start state {start!r}"
                )


class _Registration:
    """What ``handler_for`` returns: a decorator, with ``.when(condition)`` for conditional handlers."""

    def __init__(self, register: Callable[[Any], Any], when: Callable[[str], Callable[[Any], Any]]) -> None:
        self._register = register
        self.when = when

    def __call__(self, func: F) -> F:
        result: F = self._register(func)
        return result
