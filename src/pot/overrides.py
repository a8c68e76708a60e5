"""Dotted `--set` overrides (`search.k=8`) applied to a config dataclass, values converted."""

from __future__ import annotations

import dataclasses
from typing import Any


def apply_overrides(config: Any, overrides: dict[str, Any] | None, owner: str) -> Any:
    """`config` (a dataclass) with dotted overrides applied in place, values converted."""
    for key, value in (overrides or {}).items():
        *parents, name = key.split(".")
        target = config
        for part in parents:
            target = getattr(target, part, None)
        if target is None or not dataclasses.is_dataclass(target) or not hasattr(target, name):
            raise ValueError(f"unknown option {key!r} for {owner}")
        setattr(target, name, _convert(value, type(getattr(target, name)), key))
    return config


def _convert(value: Any, kind: type, key: str) -> Any:
    """`value` (often command-line text) as the type of the option's default."""
    if kind is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"option {key!r} takes true or false, not {value!r}")
        return value.lower() in ("true", "1", "yes")
    try:
        return kind(value)
    except (TypeError, ValueError):
        wanted = {int: "an integer", float: "a number"}.get(kind, f"a {kind.__name__}")
        raise ValueError(f"option {key!r} takes {wanted}, not {value!r}") from None
