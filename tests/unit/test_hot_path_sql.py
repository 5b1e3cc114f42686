"""The plan of docs/scaling.md, kept true: what a job runs names the job on every table it touches.

On a distributed PostgreSQL (Citus) the per-job tables are distributed and co-located by
``job_id`` (``DISTRIBUTED``), so a statement that is keyed by one job's id on every such table it
touches runs on one shard. Every named query is classified here exactly once, and
docs/scaling.md prints the same classification (and places every table the same way):

* ``HOT_PATH``: run for a job while it runs, or to read one job. Every reference to a
  distributed table is keyed, and by the same job id (per-request statements on
  coordinator-local tables belong here too: they touch no distributed table).
* ``EXCEPTIONS``: run while jobs run, but not single-shard: the queue claims by design, and
  statements keyed by something else than the job. Each is listed with exactly the references
  that are off-key, so a fix (or a new gap) is noticed here; the doc says how chronik would run
  each on Citus.
* ``OFF_HOT_PATH``: lists, dashboards, analytics, sweeps, housekeeping, the archive, set-up: not
  run per job; multi-shard reads or coordinator work by nature.

What counts as a key of a table reference (``FROM``, ``JOIN``, ``UPDATE``, ``DELETE FROM``,
``USING``, ``INSERT INTO``):

* ``job_id = $n``, qualified by the reference's alias or table name or unqualified, in the same
  SELECT (a predicate in a subquery keys only the subquery's own references);
* ``job_id = ANY($n)``: a batch of job ids. It names every job it touches, so it never needs a
  shard that holds none of them; it is single-shard only when the jobs share one (docs/scaling.md);
* for ``INSERT``, a ``$n`` as the value of its ``job_id`` column;
* ``a.job_id = b.job_id`` with ``b`` keyed: a join on the distribution column of co-located tables.

The checker reads SQL with regular expressions, not a parser: it knows chronik's own style of
query and errs towards reporting. It does not see that ``job_id = $1 OR ...`` is no key.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pytest

from chronik.adapters.postgres.queries import QUERIES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "scaling.md"

DISTRIBUTED = frozenset(
    {
        "events", "jobs", "job_steps", "tasks", "webhook_deliveries", "file_cleanups", "job_history",
        "task_attempts", "archived_jobs",
    }
)  # fmt: skip
"""The tables docs/scaling.md distributes by ``job_id``, co-located."""

# -- the classification (docs/scaling.md, "Every query, classified") ------------------------------

HOT_PATH = frozenset(
    {
        # One job's statements on distributed tables: each runs on the job's shard.
        "read_stream", "get_job_state", "get_job_row", "get_job_with_progress", "lock_job_state",
        "attempt_history", "retry_step", "reschedule_claimed_step", "renew_step_leases",
        "give_back_held_step",
        "job_events_of_types_down", "job_version_after_types", "job_moves", "job_open_tasks",
        "webhooks_of_job", "finish_file_cleanup", "job_chain", "archived_job",
        # Per-request statements on coordinator-local tables: one node, no shard.
        "hit_rate_limit", "hit_monthly_quota", "claim_idempotency_key", "idempotency_key_job",
        "claim_schedule_run", "find_worker_token", "heartbeat_worker",
    }
)  # fmt: skip
"""Run for a job while it runs, or to read one job: one job, one node."""

_NOT_KEYED = ": not keyed by job_id"

EXCEPTIONS: dict[str, frozenset[str]] = {
    # Queue claims: not single-shard by design (docs/scaling.md: claims per shard).
    "claim_steps": frozenset({"job_steps" + _NOT_KEYED, "jobs" + _NOT_KEYED}),
    "claim_tasks": frozenset({"tasks" + _NOT_KEYED}),
    "claim_webhooks": frozenset({"webhook_deliveries" + _NOT_KEYED}),
    "claim_file_cleanups": frozenset({"file_cleanups" + _NOT_KEYED}),
    # The commit: task rows by task id alone, and the parent's step (another job) in the same statement.
    "commit_job": frozenset({"tasks" + _NOT_KEYED, "job_steps: keyed by $26, another job than $1"}),
    # A worker's requests name a task or the worker, not the job.
    "find_task": frozenset({"tasks" + _NOT_KEYED, "jobs" + _NOT_KEYED}),
    "find_task_locked": frozenset({"tasks" + _NOT_KEYED, "jobs" + _NOT_KEYED}),
    "find_tasks": frozenset({"tasks" + _NOT_KEYED}),
    "record_progress": frozenset({"tasks" + _NOT_KEYED}),
    "extend_worker_leases": frozenset({"tasks" + _NOT_KEYED}),
    "cancelled_tasks_of_worker": frozenset({"tasks" + _NOT_KEYED}),
    "find_dispatched_task": frozenset({"events" + _NOT_KEYED}),
    # The watcher's and the webhook sender's writes of one row, found by its own id.
    "delete_task": frozenset({"tasks" + _NOT_KEYED}),
    "record_webhook_attempt": frozenset({"webhook_deliveries" + _NOT_KEYED}),
}
"""Run while jobs run, not single-shard: each with exactly the references that are off-key."""

OFF_HOT_PATH = frozenset(
    {
        # Lists, counts, dashboards and the console's overview and analytics: multi-shard reads.
        "list_jobs", "list_job_keys", "count_jobs", "count_jobs_by_status", "count_client_jobs_by_status",
        "console_jobs_per_minute", "console_client_jobs_per_minute", "console_failure_codes",
        "console_client_failure_codes", "console_queue", "console_client_queue", "console_last_schedule_runs",
        "console_statement_timeout", "console_state_times", "console_task_error_rates", "console_throughput",
        "queue_depths", "steps_due", "seconds_to_next_step", "list_live_workers", "count_live_workers",
        # Sweeps of the watcher and the projector: every job's rows, by time or by log order.
        "expired_tasks", "read_log", "log_lag", "log_horizon_holder",
        # Projections' checkpoints and tables, locks, migrations: coordinator work.
        "get_checkpoint", "lock_checkpoint", "wait_for_checkpoint", "save_checkpoint", "reset_checkpoint",
        "list_checkpoints", "table_exists", "lock_projection_setup", "analytics_checksum", "analytics_grants",
        "analytics_views", "table_indexes", "try_singleton_lock", "ping", "create_migrations_table",
        "lock_migrations", "applied_migrations", "record_migration", "lift_statement_timeout",
        "lift_lock_timeout",
        # Workers, tokens and console sessions: once per worker, token or sign-in.
        "register_worker", "issue_worker_token", "open_console_session", "find_console_session",
        "close_console_session",
        # Housekeeping: retention of the side tables.
        "prune_rate_limits", "prune_idempotency_keys", "prune_worker_tokens", "prune_console_sessions",
        "prune_gone_workers", "prune_schedule_runs", "prune_webhook_deliveries",
        # The archive, restore, export, import and chain verification: whole partitions or the whole log.
        "ensure_partitions", "list_partitions", "partition_plan", "partition_events", "record_archived_jobs",
        "forget_archived_jobs", "drop_partition", "mark_partition_archived", "jobs_with_events",
        "unindex_archived_jobs", "chain_jobs_page", "export_events", "count_events", "import_events",
        "continue_positions", "canonical_json", "normalize_job_row",
        # Upkeep for the benchmarks: sizes, a table's indexes, settings, the log's end, a sample job.
        "database_size", "relation_size", "secondary_indexes", "server_setting", "last_log_position",
        "job_id_at",
    }
)  # fmt: skip
"""Not run per job: lists, dashboards, sweeps, housekeeping, the archive, set-up."""

# -- the checker ------------------------------------------------------------------------------------

_COMMENT = re.compile(r"--[^\n]*")
_STRING = re.compile(r"'(?:[^']|'')*'")
_REFERENCE = re.compile(
    r"\b(FROM|JOIN|UPDATE|INTO|USING)\s+(?:ONLY\s+)?(?:public\.)?([a-z_]\w*)\b(?!\s*\.)", re.IGNORECASE
)
_ALIAS = re.compile(r"\s+(?:AS\s+)?([a-z_]\w*)", re.IGNORECASE)
_NOT_ALIASES = frozenset(
    {
        "where", "set", "on", "using", "left", "right", "inner", "outer", "full", "cross", "join", "natural",
        "order", "group", "limit", "offset", "for", "returning", "values", "select", "union", "intersect",
        "except", "having", "window", "with", "and", "or", "default", "overriding", "do", "tablesample", "as",
    }
)  # fmt: skip
"""Words that may follow a table's name and are not its alias."""
_KEY = re.compile(
    r"(?:\b([a-z_]\w*)\.|(?<![\w.]))job_id\s*=\s*(?:(ANY)\s*\(\s*)?\$(\d+)(?!\d)", re.IGNORECASE
)
_JOIN = re.compile(r"\b([a-z_]\w*)\.job_id\s*=\s*([a-z_]\w*)\.job_id\b", re.IGNORECASE)
_STATEMENT = re.compile(r"\s*(SELECT|WITH|INSERT|UPDATE|DELETE|VALUES)\b", re.IGNORECASE)
_SET_OPERATION = re.compile(r"\b(UNION|INTERSECT|EXCEPT)\b", re.IGNORECASE)
_PARAMETER = re.compile(r"\$(\d+)(?:::[\w\[\]]+)?")
_SELECT_LIST_END = re.compile(
    r"\b(FROM|WHERE|ON\s+CONFLICT|RETURNING|GROUP|ORDER|LIMIT|UNION)\b", re.IGNORECASE
)


class Key(NamedTuple):
    """How a reference names its job: ``$n`` (``form`` "=") or a batch ``ANY($n)``."""

    form: str
    parameter: int


class Reference(NamedTuple):
    """One use of a distributed table in a statement."""

    table: str
    keyword: str
    qualifiers: frozenset[str]
    segment: tuple[int, int]
    """The SELECT it belongs to: its innermost subquery, and which branch of a UNION there."""
    key: Key | None


def code_of(sql: str) -> str:
    """The query without comments, each string literal emptied (its parentheses and words are not SQL)."""
    return _STRING.sub("''", _COMMENT.sub("", sql))


class _Shape:
    """Where each character of a query sits: in which subquery, and in which branch of a UNION."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.close: dict[int, int] = {}
        parents: list[int] = [-1] * len(code)
        stack: list[int] = []
        for index, char in enumerate(code):
            parents[index] = stack[-1] if stack else -1
            if char == "(":
                stack.append(index)
            elif char == ")" and stack:
                self.close[stack.pop()] = index
        self._parent = parents
        # A subquery is a parenthesized group that starts with a statement; others are expressions.
        self._subquery = {start for start in self.close if _STATEMENT.match(code, start + 1) is not None}

    def scope(self, index: int) -> int:
        """The start of the innermost subquery holding ``index`` (-1: the statement itself)."""
        group = self._parent[index]
        while group != -1 and group not in self._subquery:
            group = self._parent[group]
        return group

    def segment(self, index: int) -> tuple[int, int]:
        """The subquery of ``index`` and the UNION branch it is in there."""
        scope = self.scope(index)
        operations = _SET_OPERATION.finditer(self.code, scope + 1, index)
        return scope, sum(1 for found in operations if self.scope(found.start()) == scope)

    def level_text(self, start: int, end: int) -> list[tuple[int, str]]:
        """Characters of ``[start, end)`` at the depth of ``start``, with their positions."""
        depth, found = 0, []
        for index in range(start, end):
            char = self.code[index]
            if char == "(":
                depth += 1
            if depth == 0:
                found.append((index, char))
            if char == ")":
                depth -= 1
                if depth < 0:
                    break
        return found


def _split_items(shape: _Shape, start: int, end: int) -> list[str]:
    """The comma-separated items of ``[start, end)``, split only at its own depth."""
    items, current, depth = [], [], 0
    for char in shape.code[start:end]:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return items


def _inserted_key(shape: _Shape, after: int) -> Key | None:
    """The key an ``INSERT INTO table [AS a]`` whose name ends at ``after`` gives its rows."""
    code = shape.code
    opening = code.find("(", after)
    if opening == -1 or code[after:opening].strip().upper().startswith(("SELECT", "VALUES")):
        return None
    columns = [name.lower() for name in _split_items(shape, opening + 1, shape.close[opening])]
    if "job_id" not in columns:
        return None
    rest = shape.close[opening] + 1
    source = re.compile(r"\s*(?:OVERRIDING\s+\w+\s+VALUE\s*)?(VALUES\s*\(|SELECT\b)", re.IGNORECASE)
    found = source.match(code, rest)
    if found is None:
        return None
    if found.group(1).upper().startswith("VALUES"):
        values_open = found.end() - 1
        items = _split_items(shape, values_open + 1, shape.close[values_open])
    else:
        level = shape.level_text(found.end(), len(code))
        text = "".join(char for _, char in level)
        end = _SELECT_LIST_END.search(text)
        stop = level[end.start()][0] if end else (level[-1][0] + 1 if level else found.end())
        items = _split_items(shape, found.end(), stop)
    item = items[columns.index("job_id")] if len(items) == len(columns) else ""
    matched = _PARAMETER.fullmatch(item)
    return Key("=", int(matched.group(1))) if matched else None


def references(sql: str) -> list[Reference]:
    """Every use of a distributed table in ``sql``, each with its key (``None``: not keyed)."""
    code = code_of(sql)
    shape = _Shape(code)
    found: list[tuple[str, str, frozenset[str], tuple[int, int], Key | None]] = []
    for match in _REFERENCE.finditer(code):
        keyword, table = match.group(1).upper(), match.group(2)
        if table not in DISTRIBUTED:
            continue
        qualifiers = {table}
        alias = _ALIAS.match(code, match.end())
        if alias and alias.group(1).lower() not in _NOT_ALIASES:
            qualifiers = {alias.group(1)}
        name_end = alias.end() if alias and qualifiers != {table} else match.end()
        key = _inserted_key(shape, name_end) if keyword == "INTO" else None
        found.append((table, keyword, frozenset(qualifiers), shape.segment(match.start()), key))
    keys: list[tuple[str | None, tuple[int, int], Key]] = [
        (
            match.group(1),
            shape.segment(match.start()),
            Key("ANY" if match.group(2) else "=", int(match.group(3))),
        )
        for match in _KEY.finditer(code)
    ]
    result: list[Reference] = []
    for table, keyword, qualifiers, segment, key in found:
        if key is None:
            key = next(
                (
                    key
                    for qualifier, where, key in keys
                    if where == segment and (qualifier is None or qualifier in qualifiers)
                ),
                None,
            )
        result.append(Reference(table, keyword, qualifiers, segment, key))
    # Co-located joins: a reference joined on job_id to a keyed one runs on that one's shard.
    joins = [pair for left, right in _JOIN.findall(code) for pair in ((left, right), (right, left))]
    changed = True
    while changed:
        changed = False
        for index, reference in enumerate(result):
            partner = next(
                (
                    other
                    for mine, theirs in joins
                    if reference.key is None and mine in reference.qualifiers
                    for other in result
                    if theirs in other.qualifiers and other.key is not None
                ),
                None,
            )
            if partner is not None:
                result[index] = reference._replace(key=partner.key)
                changed = True
    return result


def gaps(sql: str) -> frozenset[str]:
    """What keeps ``sql`` from one shard: its references not keyed, or keyed by another job's id."""
    found = references(sql)
    parameters = Counter(reference.key.parameter for reference in found if reference.key is not None)
    main = min(parameters, key=lambda p: (-parameters[p], p)) if parameters else None
    problems = set()
    for reference in found:
        if reference.key is None:
            problems.add(f"{reference.table}: not keyed by job_id")
        elif reference.key.parameter != main:
            problems.add(f"{reference.table}: keyed by ${reference.key.parameter}, another job than ${main}")
    return frozenset(problems)


# -- the checks -------------------------------------------------------------------------------------


def test_every_query_is_classified_exactly_once() -> None:
    # A new query forces a decision: add it to one set here and to its table in docs/scaling.md.
    sets = {"HOT_PATH": HOT_PATH, "EXCEPTIONS": frozenset(EXCEPTIONS), "OFF_HOT_PATH": OFF_HOT_PATH}
    counted = Counter(name for names in sets.values() for name in names)
    twice = sorted(name for name, times in counted.items() if times > 1)
    assert not twice, f"classified more than once: {twice}"
    unclassified = sorted(set(QUERIES) - set(counted))
    assert not unclassified, f"not classified yet (HOT_PATH, EXCEPTIONS or OFF_HOT_PATH): {unclassified}"
    gone = sorted(set(counted) - set(QUERIES))
    assert not gone, f"classified, but no such query any more: {gone}"


@pytest.mark.parametrize("name", sorted(HOT_PATH))
def test_a_hot_path_query_names_one_job_on_every_distributed_table(name: str) -> None:
    found = gaps(QUERIES[name])
    assert not found, (
        f"{name} runs per job but would not stay on one shard: {sorted(found)}. Key each reference "
        "with job_id = $n (docs/scaling.md), or move it to EXCEPTIONS and document why."
    )


@pytest.mark.parametrize("name", sorted(EXCEPTIONS))
def test_an_exception_is_off_key_exactly_where_documented(name: str) -> None:
    found = gaps(QUERIES[name])
    assert found == EXCEPTIONS[name], (
        f"{name}: off-key references are now {sorted(found)}, documented {sorted(EXCEPTIONS[name])}. "
        "Fewer: update EXCEPTIONS and docs/scaling.md (or move it to HOT_PATH); more: a new gap."
    )


_PARTITION_KEY = re.compile(
    r"(?:\b[a-z_]\w*\.)?\bjob_time\s*=\s*chronik_job_time_v1\(\s*\$(\d+)", re.IGNORECASE
)


@pytest.mark.parametrize("name", sorted(HOT_PATH | set(EXCEPTIONS)))
def test_a_keyed_read_of_the_log_names_its_partition(name: str) -> None:
    # events is partitioned by job_time = chronik_job_time_v1(job_id) (migration 0020): beside
    # job_id = $n, that predicate prunes a read of one job to one partition.
    code = code_of(QUERIES[name])
    shape = _Shape(code)
    pinned = {(shape.segment(match.start()), int(match.group(1))) for match in _PARTITION_KEY.finditer(code)}
    for reference in references(QUERIES[name]):
        if reference.table != "events" or reference.keyword == "INTO" or reference.key is None:
            continue
        if reference.key.form == "=":
            assert (reference.segment, reference.key.parameter) in pinned, (
                f"{name} reads events of job ${reference.key.parameter} without "
                f"job_time = chronik_job_time_v1(${reference.key.parameter}): every partition is read"
            )


_ANY_KEY = re.compile(
    r"(?:\b[a-z_]\w*\.)?\bjob_id\s*=\s*(?:ANY\s*\(\s*\$\d+(?:::[\w\[\]]+)?\s*\)|\$\d+(?:::[\w\[\]]+)?)",
    re.IGNORECASE,
)


@pytest.mark.parametrize("name", sorted(n for n in HOT_PATH | set(EXCEPTIONS) if _ANY_KEY.search(QUERIES[n])))
def test_the_check_fails_a_query_that_loses_its_job_id(name: str) -> None:
    # The checker is not a formality: with its job_id predicates gone, every per-job statement is
    # reported for something more (commit_job's INSERTs keep their keys, in their VALUES).
    stripped = _ANY_KEY.sub("true", QUERIES[name])
    assert gaps(stripped) - gaps(QUERIES[name]), f"{name} without its job_id predicates passes the check"


def test_the_check_fails_retry_step_without_job_id() -> None:
    sql = QUERIES["retry_step"]
    assert "WHERE job_id = $1 AND " in sql
    assert gaps(sql.replace("WHERE job_id = $1 AND ", "WHERE ")) == {"job_steps" + _NOT_KEYED}


def test_the_check_reads_keys_as_documented() -> None:
    assert not gaps("SELECT 1 FROM tasks t JOIN jobs j ON j.job_id = t.job_id WHERE t.job_id = $1")
    assert not gaps("UPDATE job_steps SET run_at = now() WHERE job_id = ANY($1::uuid[])")
    assert not gaps("INSERT INTO jobs (job_id, version) VALUES ($2, 1)")
    assert gaps("INSERT INTO jobs (job_id, version) SELECT j, 1 FROM unnest($1::uuid[]) AS j") == {
        "jobs" + _NOT_KEYED
    }
    # A predicate in a subquery keys the subquery's references only; each branch of a UNION has its own.
    inner = "SELECT * FROM tasks WHERE task_id IN (SELECT task_id FROM tasks WHERE job_id = $1)"
    assert gaps(inner) == {"tasks" + _NOT_KEYED}
    union = "SELECT 1 FROM events WHERE job_id = $1 UNION ALL SELECT 1 FROM events WHERE version = 1"
    assert gaps(union) == {"events" + _NOT_KEYED}
    nested = "SELECT 1 FROM jobs WHERE job_id = $1 AND EXISTS (SELECT 1 FROM tasks WHERE job_id = $2)"
    assert gaps(nested) == {"tasks: keyed by $2, another job than $1"}


# -- the doc says the same --------------------------------------------------------------------------

SECTIONS = {
    "One job, one node": HOT_PATH,
    "Known multi-shard exceptions": frozenset(EXCEPTIONS),
    "Off the hot path": OFF_HOT_PATH,
}
"""The subsections of docs/scaling.md's "Every query, classified", each a table of its queries."""

_ROW_NAME = re.compile(r"^\|\s*`(\w+)`", re.MULTILINE)


def doc_section(text: str, heading: str) -> str:
    """The body of the section headed ``heading``, up to the next heading of its level or above."""
    found = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.MULTILINE)
    assert found, f"docs/scaling.md has no section {heading!r}"
    level = len(found.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, found.end())
    return text[found.end() : end.start() if end else len(text)]


def test_the_doc_classifies_every_query_as_this_module_does() -> None:
    text = DOC.read_text(encoding="utf-8")
    classified = doc_section(text, "Every query, classified")
    for heading, names in SECTIONS.items():
        listed = _ROW_NAME.findall(doc_section(classified, heading))
        assert len(listed) == len(set(listed)), f"{heading}: a query is listed twice"
        assert set(listed) == names, (
            f"docs/scaling.md, {heading!r}: missing {sorted(names - set(listed))}, "
            f"extra {sorted(set(listed) - names)}"
        )


_CREATE_TABLE = re.compile(
    r"\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)(\s+PARTITION\s+OF)?"
)
_DROP_TABLE = re.compile(r"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(\w+)")


def created_tables() -> set[str]:
    """Every table the migrations, the projections and the migrator create and keep (partitions aside)."""
    tables: set[str] = set()
    texts = [path.read_text() for path in sorted((ROOT / "sql" / "migrations").glob("*.sql"))]
    texts += list(QUERIES.values())
    for text in texts:
        code = _COMMENT.sub("", text)
        events = sorted(
            [(m.start(), "create", m.group(1)) for m in _CREATE_TABLE.finditer(code) if not m.group(2)]
            + [(m.start(), "drop", m.group(1)) for m in _DROP_TABLE.finditer(code)]
        )
        for _, what, name in events:
            (tables.add if what == "create" else tables.discard)(name)
    for path in (ROOT / "sql" / "projections").glob("*.sql"):
        if "CREATE TABLE {table}" in path.read_text():
            tables.add(path.stem)
    return tables


def test_the_doc_places_every_table() -> None:
    rows = doc_section(DOC.read_text(encoding="utf-8"), "Tables")
    placed = dict(re.findall(r"^\|\s*`(\w+)`\s*\|\s*([^|]+)\|", rows, re.MULTILINE))
    tables = created_tables()
    assert "events" in tables and "schema_migrations" in tables and "job_history" in tables
    missing, extra = sorted(tables - set(placed)), sorted(set(placed) - tables)
    assert not missing and not extra, f"docs/scaling.md, Tables: missing {missing}, extra {extra}"
    distributed = {name for name, where in placed.items() if "distributed" in where}
    assert distributed == DISTRIBUTED
