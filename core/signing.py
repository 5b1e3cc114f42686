"""HMAC-SHA256 signatures of worker messages, as Avtomatika's ``rxon`` wire format makes them.

The signed bytes are the message without its ``security`` member, re-encoded
canonically: keys sorted at every level, compact, UTF-8, ``null`` members of
objects dropped (nulls inside arrays kept), integral floats written as integers,
and other floats written the way orjson writes them. The stdlib encoder below
reproduces that byte for byte; ``json.dumps`` and msgspec differ on some floats.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

__all__ = ["canonical_bytes", "sign", "verify"]

_EXCLUDED = ("security", "_signature")


def canonical_bytes(message: dict[str, Any], ignore_fields: Iterable[str] = ()) -> bytes:
    """The bytes a signature covers."""
    skip = set(_EXCLUDED) | set(ignore_fields)
    data = {key: value for key, value in message.items() if key not in skip}
    out: list[str] = []
    _encode(_normalize(data), out)
    return "".join(out).encode("utf-8")


def sign(message: dict[str, Any], secret: str, ignore_fields: Iterable[str] = ()) -> str:
    """The hex HMAC-SHA256 of ``message`` keyed by ``secret``."""
    return hmac.new(
        secret.encode("utf-8"), canonical_bytes(message, ignore_fields), hashlib.sha256
    ).hexdigest()


def verify(message: dict[str, Any], secret: str, ignore_fields: Iterable[str] = ()) -> bool:
    """Whether ``message["security"]["signature"]`` is the signature of ``message`` under ``secret``."""
    security = message.get("security")
    signature = security.get("signature") if isinstance(security, dict) else None
    if not isinstance(signature, str) or not secret:
        return False
    return hmac.compare_digest(sign(message, secret, ignore_fields), signature)


def _normalize(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _normalize(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_normalize(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _float(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return "null"
    text = repr(value)
    if "e-0" in text:
        # orjson writes 1e-05 as 0.00001 and 1e-07 as 1e-7.
        mantissa, exponent = text.split("e-0")
        return format(Decimal(text), "f") if exponent == "5" else f"{mantissa}e-{exponent}"
    return text


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, list):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for index, key in enumerate(sorted(value)):
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    else:
        raise TypeError(f"cannot sign a value of type {type(value).__name__}")
