"""Values that cross between the untrusted program and the trusted judge, as plain data.

Standard library only: the program's side embeds this module's source (it imports no `pot`).

The format is JSON text. null, true/false, numbers, strings and arrays stand for None, bool,
int/float, str and list; every other allowed type is a JSON object {"$": tag, "v": payload}:
tuple, set and frozenset (v: list of items), dict (v: list of [key, value] pairs), bytes
(v: hex), complex (v: [real, imag]) and float for nan and the infinities (v: "nan", "inf",
"-inf"). Plain JSON without objects is therefore a valid encoding of itself.

`decode` builds exact builtin types only and never calls pickle or eval, so nothing a program
sends can run code or carry an `__eq__` of its own on the judge's side. `encode` accepts
subclasses of the allowed types by their builtin value (a namedtuple travels as a tuple).

Opaque handles (the sandbox's objects of a program's own classes): with `handle=`, `encode`
writes an object outside the allowed types as {"$": "handle", "v": handle(object)} and
`decode` turns that object back with `handle(payload)`; without it both refuse handles.
"""

import json
import math

MAX_DEPTH = 100
SCALARS = (type(None), bool, int, float, str)


class UnsupportedValue(TypeError):
    """A value outside the allowed types; the message names the type."""


def encode(value: object, handle=None) -> str:
    return json.dumps(to_data(value, 0, handle), allow_nan=False, separators=(",", ":"))


def to_data(value: object, depth: int, handle=None) -> object:
    if depth > MAX_DEPTH:
        raise UnsupportedValue(f"value nested deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if kind in SCALARS:
        if kind is float and not math.isfinite(value):
            return {"$": "float", "v": repr(value)}
        return value
    if issubclass(kind, int):
        return int.__index__(value)
    if issubclass(kind, float):
        return to_data(float.__float__(value), depth, handle)
    if issubclass(kind, str):
        return str.__str__(value)
    if issubclass(kind, bytes):
        return {"$": "bytes", "v": bytes.hex(value)}
    if issubclass(kind, complex):
        real, imag = complex.real.__get__(value), complex.imag.__get__(value)
        return {"$": "complex", "v": [to_data(real, depth), to_data(imag, depth)]}
    if issubclass(kind, list):
        return [to_data(item, depth + 1, handle) for item in list.__iter__(value)]
    for container, tag in ((tuple, "tuple"), (frozenset, "frozenset"), (set, "set")):
        if issubclass(kind, container):
            items = container.__iter__(value)
            return {"$": tag, "v": [to_data(item, depth + 1, handle) for item in items]}
    if issubclass(kind, dict):
        pairs = dict.items(value)
        return {
            "$": "dict",
            "v": [[to_data(k, depth + 1, handle), to_data(v, depth + 1, handle)] for k, v in pairs],
        }
    if handle is not None:
        return {"$": "handle", "v": handle(value)}
    raise UnsupportedValue(f"unsupported type: {type_name(value)}")


def type_name(value: object) -> str:
    kind = type(value)
    module = getattr(kind, "__module__", "")
    name = getattr(kind, "__qualname__", "?")
    return name if module in ("builtins", "__main__", "") else f"{module}.{name}"


def reject_constant(name: str) -> object:
    raise ValueError(f"not a valid value encoding: bare {name}")


DECODER = json.JSONDecoder(parse_constant=reject_constant)  # one, not one per call


def decode(text: str, handle=None) -> object:
    """The value `text` encodes; ValueError on anything that is not a valid encoding."""
    try:
        data = DECODER.decode(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"not a valid value encoding: {error}") from None
    return from_data(data, 0, handle)


def from_data(data: object, depth: int, handle=None) -> object:
    if depth > MAX_DEPTH:
        raise ValueError(f"value nested deeper than {MAX_DEPTH} levels")
    if type(data) in SCALARS:
        return data
    if type(data) is list:
        return [from_data(item, depth + 1, handle) for item in data]
    if type(data) is not dict or set(data) != {"$", "v"}:
        raise ValueError(f"not a valid value encoding: unexpected {str(data)[:80]}")
    tag, payload = data["$"], data["v"]
    if tag == "handle" and handle is not None:
        return handle(payload)
    if tag == "float" and payload in ("nan", "inf", "-inf"):
        return float(payload)
    if tag == "bytes" and type(payload) is str:
        return bytes.fromhex(payload)
    if tag == "complex" and type(payload) is list and len(payload) == 2:
        real, imag = (from_data(part, depth + 1) for part in payload)
        if type(real) in (int, float) and type(imag) in (int, float):
            return complex(real, imag)
    if type(payload) is list:
        items = [from_data(item, depth + 1, handle) for item in payload]
        if tag == "tuple":
            return tuple(items)
        if tag in ("set", "frozenset"):
            try:
                return set(items) if tag == "set" else frozenset(items)
            except TypeError:
                raise ValueError(f"not a valid value encoding: unhashable {tag} item") from None
        if tag == "dict" and all(type(pair) is list and len(pair) == 2 for pair in items):
            try:
                return {key: item for key, item in items}
            except TypeError:
                raise ValueError("not a valid value encoding: unhashable dict key") from None
    raise ValueError(f"not a valid value encoding: bad {tag!r} object")
