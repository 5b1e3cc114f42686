"""The condition language of ``@bp.handler_for("state").when("...")``: parsed once, never ``eval``'d.

Grammar (lowest precedence first)::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") operand)?
    operand    := path | NUMBER | STRING | "True" | "False" | "None" | "(" expr ")" | list
    list       := "(" expr "," [expr ("," expr)*] ")" | "[" [expr ("," expr)*] "]"
    path       := ROOT ("." NAME)*        ROOT is context, initial_data or state_history

``context.initial_data.order.total > 100 and not state_history.flagged`` reads a
nested value through objects and dicts alike. A path that does not exist at run
time is *missing*: every comparison with it is false and it is itself falsy,
so a condition never crashes a job.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Final

from .errors import BlueprintError

__all__ = ["ROOTS", "Condition", "parse_condition"]

ROOTS: Final = frozenset({"context", "initial_data", "state_history"})
_MAX_DEPTH: Final = 50

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\.)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)
_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "True", "False", "None"})
_COMPARE: Final = frozenset({"==", "!=", "<", "<=", ">", ">=", "in", "not in"})


class _Missing:
    """A path that leads nowhere: falsy, and unequal to everything."""

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    column: int


Node = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition; call ``matches`` with the values of its roots."""

    source: str
    _evaluate: Node

    def matches(self, roots: Mapping[str, Any]) -> bool:
        """Whether the condition holds; never raises, whatever the data holds."""
        try:
            return bool(self._evaluate(roots))
        except Exception:
            return False


def parse_condition(source: str, *, where: str = "") -> Condition:
    """Parse ``source``; a ``BlueprintError`` points at the column of what is wrong."""
    tokens = _tokenize(source, where)
    parser = _Parser(source, tokens, where)
    node = parser.expression()
    parser.expect_end()
    return Condition(source, node)


def _tokenize(source: str, where: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise _error(source, position, f"unexpected character {source[position]!r}", where)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group(), position + 1))
        position = match.end()
    return tokens


def _error(source: str, position: int, message: str, where: str) -> BlueprintError:
    prefix = f"{where}: " if where else ""
    pointer = " " * position + "^"
    return BlueprintError(
        f"{prefix}condition {source!r}, column {position + 1}: {message}\n  {source}\n  {pointer}"
    )


class _Parser:
    def __init__(self, source: str, tokens: list[_Token], where: str) -> None:
        self.source = source
        self.tokens = tokens
        self.index = 0
        self.where = where
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise _error(self.source, len(self.source), "the condition ends too early", self.where)
        self.index += 1
        return token

    def fail(self, token: _Token | None, message: str) -> BlueprintError:
        position = len(self.source) if token is None else token.column - 1
        return _error(self.source, position, message, self.where)

    def at(self, text: str) -> bool:
        token = self.peek()
        return token is not None and token.text == text and token.kind in ("name", "op")

    def expect_end(self) -> None:
        token = self.peek()
        if token is not None:
            raise self.fail(token, f"unexpected {token.text!r}; expected 'and', 'or' or the end")

    def expression(self) -> Node:
        return self.disjunction()

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.at("or"):
            self.take()
            left, right = node, self.conjunction()
            node = _or(left, right)
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.at("and"):
            self.take()
            left, right = node, self.negation()
            node = _and(left, right)
        return node

    def negation(self) -> Node:
        if self.at("not"):
            token = self.take()
            self.enter(token)
            inner = self.negation()
            self.depth -= 1
            return lambda roots: not inner(roots)
        return self.comparison()

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.fail(token, f"nested more than {_MAX_DEPTH} deep")

    def comparison(self) -> Node:
        left = self.operand()
        operator = None
        upcoming = self.peek()
        if self.at("not"):
            self.take()
            following = self.take()
            if following.text != "in":
                raise self.fail(following, "expected 'in' after 'not'")
            operator = "not in"
        elif upcoming is not None and upcoming.text in _COMPARE and upcoming.kind in ("op", "name"):
            operator = self.take().text
        if operator is None:
            return left
        right = self.operand()
        return _compare(operator, left, right)

    def operand(self) -> Node:
        token = self.take()
        if token.kind == "number":
            try:
                number = float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
            except ValueError:
                raise self.fail(token, "the number is too long") from None
            return lambda _roots: number
        if token.kind == "string":
            text = _unquote(token.text)
            return lambda _roots: text
        if token.text in ("(", "["):
            closing_text = ")" if token.text == "(" else "]"
            if token.text == "(" and self.at(")"):
                raise self.fail(self.peek(), "empty parentheses; put a value or a condition inside")
            self.enter(token)
            items = [] if self.at(closing_text) else [self.expression()]
            self.depth -= 1
            listed = token.text == "["
            while self.at(","):
                self.take()
                listed = True
                if self.at(closing_text):
                    break
                items.append(self.expression())
            closing = self.peek()
            if closing is None or closing.text != closing_text:
                raise self.fail(closing, f"expected {closing_text!r}")
            self.take()
            if not listed:
                return items[0]
            members = tuple(items)
            return lambda roots: [member(roots) for member in members]
        if token.kind == "name":
            if token.text in ("True", "False", "None"):
                constant = {"True": True, "False": False, "None": None}[token.text]
                return lambda _roots: constant
            if token.text in _KEYWORDS:
                raise self.fail(token, f"expected a value, found {token.text!r}")
            if token.text not in ROOTS:
                raise self.fail(
                    token, f"unknown name {token.text!r}; a path starts with {', '.join(sorted(ROOTS))}"
                )
            return self.path(token.text)
        raise self.fail(token, f"expected a value, found {token.text!r}")

    def path(self, root: str) -> Node:
        names: list[str] = []
        while self.at("."):
            self.take()
            token = self.take()
            if token.kind != "name" or token.text in _KEYWORDS:
                raise self.fail(token, "expected a name after '.'")
            names.append(token.text)
        steps = tuple(names)
        return lambda roots: _resolve(roots.get(root, MISSING), steps)


def _resolve(value: Any, names: tuple[str, ...]) -> Any:
    # Only data is read: mappings, and the fields of dataclasses, namespaces and Structs.
    # A property of some other object could run code, so it reads as missing.
    for name in names:
        if isinstance(value, Mapping):
            value = value.get(name, MISSING)
        elif name.startswith("_") or not _has_field(value, name):
            return MISSING
        else:
            value = getattr(value, name, MISSING)
        if value is MISSING:
            return MISSING
    return value


def _missing(value: Any) -> bool:
    # Inside a list too: Python compares list items by identity first, and MISSING is one object.
    return value is MISSING or (isinstance(value, list) and any(_missing(item) for item in value))


def _has_field(value: Any, name: str) -> bool:
    if isinstance(value, SimpleNamespace):
        return name in vars(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return name in {f.name for f in dataclasses.fields(value)}
    fields = getattr(type(value), "__struct_fields__", None)
    return isinstance(fields, tuple) and name in fields


def _and(left: Node, right: Node) -> Node:
    return lambda roots: bool(left(roots)) and bool(right(roots))


def _or(left: Node, right: Node) -> Node:
    return lambda roots: bool(left(roots)) or bool(right(roots))


def _compare(operator: str, left: Node, right: Node) -> Node:
    def compare(roots: Mapping[str, Any]) -> bool:
        a, b = left(roots), right(roots)
        if _missing(a) or _missing(b):
            return False
        match operator:
            case "==":
                return bool(a == b)
            case "!=":
                return bool(a != b)
            case "<":
                return bool(a < b)
            case "<=":
                return bool(a <= b)
            case ">":
                return bool(a > b)
            case ">=":
                return bool(a >= b)
            case "in":
                return bool(a in b)
            case _:
                return bool(a not in b)

    return compare


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)
