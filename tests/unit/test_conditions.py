"""The condition language: its grammar, its errors (with the column), and missing data as false."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from chronik.core.conditions import parse_condition
from chronik.core.errors import BlueprintError

ROOTS: dict[str, Any] = {
    "initial_data": {"order": {"total": 150, "country": "DE", "tags": ["vip", "eu"]}, "flag": False},
    "state_history": {"score": 0.7, "note": None},
    "context": SimpleNamespace(current_state="route", initial_data={"order": {"total": 150}}),
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("initial_data.order.total > 100", True),
        ("context.initial_data.order.total > 100", True),
        ("initial_data.order.total >= 150 and initial_data.order.total <= 150", True),
        ("initial_data.order.total < 100 or state_history.score == 0.7", True),
        ("not initial_data.flag", True),
        ("not (initial_data.order.total > 100)", False),
        ("initial_data.order.country == 'DE'", True),
        ('initial_data.order.country != "FR"', True),
        ("'vip' in initial_data.order.tags", True),
        ("'staff' not in initial_data.order.tags", True),
        ("initial_data.order.country in 'DEFR'", True),
        ("initial_data.order.country in ('DE', 'AT')", True),
        ("initial_data.order.country in ['FR']", False),
        ("initial_data.order.total in [150,]", True),
        ("state_history.note == None", True),
        ("initial_data.flag == False and True", True),
        ("context.current_state == 'route'", True),
        ("initial_data.order.total > 1e2", True),
        ("-5 < initial_data.order.total", True),
        ("initial_data.order", True),
        # Missing data is false, never a crash; and comparisons of unlike types are false too.
        ("initial_data.order.missing > 1", False),
        ("initial_data.nothing.deeper == None", False),
        ("not initial_data.nothing", True),
        ("initial_data.order.country > 5", False),
        ("context.__class__ == 1", False),
        ("[initial_data.nope] == [initial_data.nada]", False),
    ],
)
def test_grammar(expression: str, expected: bool) -> None:
    assert parse_condition(expression).matches(ROOTS) is expected


def test_precedence_and_before_or() -> None:
    assert parse_condition("True or False and False").matches(ROOTS) is True
    assert parse_condition("(True or False) and False").matches(ROOTS) is False


@pytest.mark.parametrize(
    ("expression", "column", "message"),
    [
        ("order.total > 1", 1, "unknown name 'order'"),
        ("initial_data.total >", 21, "ends too early"),
        ("initial_data.total > > 1", 22, "expected a value"),
        ("(initial_data.x == 1", 21, "expected ')'"),
        ("initial_data.x == 1 1", 21, "unexpected '1'"),
        ("initial_data. == 1", 15, "expected a name after '.'"),
        ("initial_data.x not 1", 20, "expected 'in' after 'not'"),
        ("initial_data.x = 1", 16, "unexpected character '='"),
        ("import os", 1, "unknown name 'import'"),
        ("", 1, "ends too early"),
        ("()", 2, "empty parentheses"),
        ("not " * 60 + "True", 201, "nested more than 50 deep"),
        ("1" * 5000 + " > 1", 1, "the number is too long"),
    ],
)
def test_errors_point_at_the_column(expression: str, column: int, message: str) -> None:
    with pytest.raises(BlueprintError) as caught:
        parse_condition(expression, where="blueprint 'b', state 's'")
    text = caught.value.message
    assert f"column {column}:" in text and message in text and text.startswith("blueprint 'b', state 's'")


def test_only_data_is_read_never_code() -> None:
    class Client:
        @property
        def ready(self) -> bool:
            raise RuntimeError("a property ran")

    roots = {"context": SimpleNamespace(data_stores=SimpleNamespace(db=Client()))}
    assert parse_condition("context.data_stores.db.ready").matches(roots) is False
