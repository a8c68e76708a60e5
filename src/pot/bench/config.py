"""Run config files (`--config run.toml`) for `pot solve`, `pot bench` and `pot math`.

A file holds the run keys (tasks, methods, budget, seeds, engine, ...) and any `--set` key,
written as TOML keys or tables: `pot.search.k = 8` and `[pot.search] k = 8` are both
`--set pot.search.k=8`. Every run folder keeps its effective config as `config.toml` (what the
file and the flags said together), so `pot bench --config runs/NAME/config.toml` reruns it.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from pot.methods import METHODS, method_config
from pot.policy.engines import EngineOptions
from pot.sandbox import Limits

RUN_KEYS = (
    "domain",
    "tasks",
    "methods",
    "budget",
    "seeds",
    "model",
    "engine",
    "oracle",
    "limit",
    "ids",
    "skip",
    "since",
    "until",
    "job_timeout",
)
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class ConfigError(ValueError):
    pass


def dotted_fields(config: Any, prefix: str = "") -> list[str]:
    names = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            names += dotted_fields(value, f"{prefix}{f.name}.")
        else:
            names.append(f"{prefix}{f.name}")
    return names


def option_keys(domain: str) -> list[str]:
    """Every `--set` key of a domain: unscoped and method-scoped options, the engines' and
    (code) the sandbox's."""
    engines = dotted_fields(EngineOptions())
    if domain == "math":
        from pot.methods.math_methods import MathConfig

        return sorted([*dotted_fields(MathConfig()), *engines])
    keys = {f"sandbox.{name}" for name in ("isolation", *dotted_fields(Limits()))} | set(engines)
    for method in METHODS:
        for name in dotted_fields(method_config(method)):
            keys |= {name, f"{method}.{name}"}
    return sorted(keys)


def nearest(key: str, candidates: list[str]) -> str:
    """' (did you mean X?)' for the closest candidate, or ''."""
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict) and f"{prefix}{key}" not in RUN_KEYS:  # budget = {...}
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def as_text(value: Any) -> str:
    """A TOML value as `--set` gives it: text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.isoformat() if isinstance(value, datetime.date) else str(value)


def read_config(path: Path, domain: str) -> dict[str, Any]:
    """The run keys of the file, and its `--set` keys under "set" (values as text)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read it ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config {path}: not valid TOML ({e})") from None
    settings: dict[str, Any] = {}
    overrides: dict[str, str] = {}
    valid = option_keys(domain)
    for key, value in flatten(data).items():
        if key in RUN_KEYS:
            settings[key] = run_value(path, key, value)
        elif key in valid:
            overrides[key] = as_text(value)
        else:
            hint = nearest(key, [*RUN_KEYS, *valid])
            raise ConfigError(f"--config {path}: unknown key {key!r}{hint}")
    if settings.get("domain", domain) != domain:
        command = "pot math" if settings["domain"] == "math" else "pot bench"
        raise ConfigError(f"--config {path} is a {settings['domain']} run: use {command} --config")
    return {**settings, "set": overrides}


def run_value(path: Path, key: str, value: Any) -> Any:
    """A run key's value in the form the command line gives it."""
    if key == "budget" and isinstance(value, dict):
        return ",".join(f"{name}={limit}" for name, limit in value.items())
    if key in ("methods", "ids", "seeds") and isinstance(value, list):
        return ",".join(str(item) for item in value)
    if key in ("since", "until") and isinstance(value, datetime.date):
        return value.isoformat()
    if key == "seeds" and isinstance(value, int):
        return str(value)
    kinds: dict[str, tuple[type, ...]] = {
        "oracle": (bool,),
        "limit": (int,),
        "skip": (int,),
        "job_timeout": (int, float),
    }
    kind = kinds.get(key, (str,))
    if not isinstance(value, kind) or (bool not in kind and isinstance(value, bool)):
        wanted = {"oracle": "true or false", "job_timeout": "a number of seconds"}.get(
            key, "an integer" if kind == (int,) else "text"
        )
        raise ConfigError(f"--config {path}: {key} takes {wanted}, not {as_text(value)!r}")
    return value


def toml_key(key: str) -> str:
    return ".".join(part if BARE_KEY.match(part) else json.dumps(part) for part in key.split("."))


def render_config(settings: dict[str, Any]) -> str:
    """TOML for `settings` (BenchSpec.settings()); None values are left out. JSON's strings,
    numbers, booleans and lists of them are TOML's too."""
    lines = ["# This run's effective config: `pot bench --config THIS_FILE` reruns it."]
    for key in RUN_KEYS:
        value = settings.get(key)
        if value is not None and value != []:
            lines.append(f"{key} = {json.dumps(value)}")
    lines += [f"{toml_key(k)} = {json.dumps(v)}" for k, v in sorted(settings["set"].items())]
    return "\n".join(lines) + "\n"
