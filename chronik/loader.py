"""Load a user's APP (``module:attribute``) into blueprints, with errors that name the culprit."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable

from chronik.core.blueprint import Blueprint
from chronik.core.errors import ConfigError

from .worker import Worker

__all__ = ["load_blueprints", "load_object", "load_worker"]


def load_blueprints(ref: str) -> list[Blueprint]:
    """Import ``module:attribute`` and return its blueprints.

    The attribute may be a ``Blueprint``, an iterable of them, or a function
    that takes no arguments and returns either. The current directory is
    importable, as with ``python -m``.
    """
    target = load_object(ref)
    module_name, _, attribute = ref.partition(":")
    if callable(target) and not isinstance(target, Blueprint):
        target = target()
    if isinstance(target, Blueprint):
        return [target]
    if isinstance(target, Iterable) and not isinstance(target, str | bytes):
        found = list(target)
        bad = [item for item in found if not isinstance(item, Blueprint)]
        if not bad and found:
            return found
    raise ConfigError(
        f"APP {ref!r}: {module_name}.{attribute} is {type(target).__name__}; expected a Blueprint, "
        "a list of Blueprints, or a function returning one"
    )


def load_worker(ref: str) -> Worker:
    """Import ``module:attribute`` and return the ``chronik.Worker`` it names."""
    target = load_object(ref)
    if not isinstance(target, Worker):
        raise ConfigError(f"APP {ref!r} is {type(target).__name__}; expected a chronik.Worker")
    return target


def load_object(ref: str) -> object:
    """The object ``module:attribute`` names; errors name the module or attribute at fault."""
    module_name, sep, attribute = ref.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"APP {ref!r} must have the form module:attribute, e.g. myflows:bp")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"APP {ref!r}: cannot import module {module_name!r}: {exc}") from exc
    target: object = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"APP {ref!r}: module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    return target
