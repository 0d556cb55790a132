"""Reading a JSON request body without letting its shape hurt the reader.

Parsed by orjson (in C: no recursion of ours, and it refuses NaN and Infinity, which JSON
does not have), then walked once without recursion: a document nested deeper than the limit
is refused before any model, encoder or recursive function sees it, and so is text holding
a NUL character (Postgres cannot store one in text or jsonb).
"""

from __future__ import annotations

from typing import Any

import orjson

DEFAULT_MAX_DEPTH = 32


class InvalidJson(ValueError):
    """Not JSON, nested too deep, or holding what no field may hold; `field` says where."""

    def __init__(self, reason: str, field: str = "(body)") -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _path(parts: tuple[str | int, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out or "(body)"


def problem(value: Any, max_depth: int) -> tuple[str, str] | None:
    """(where, why) for the first thing wrong in a parsed document, or None."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, ())]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return _path(path), "must not contain a NUL (\\u0000) character"
            continue
        if isinstance(item, dict):
            if depth > max_depth:
                return _path(path), f"nested more than {max_depth} levels deep"
            for key, child in item.items():
                if "\x00" in key:
                    return _path(path), "a field name must not contain a NUL (\\u0000) character"
                if isinstance(child, dict | list | str):
                    stack.append((child, depth + 1, (*path, key)))
        elif isinstance(item, list):
            if depth > max_depth:
                return _path(path), f"nested more than {max_depth} levels deep"
            stack.extend(
                (child, depth + 1, (*path, i)) for i, child in enumerate(item) if isinstance(child, dict | list | str)
            )
    return None


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests objects and arrays more than `limit` levels deep."""
    found = problem(value, limit)
    return found is not None and "levels deep" in found[1]


def loads(body: bytes | str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The JSON document in `body`; InvalidJson if it is not one, nests too deep or holds a NUL."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        if "depth limit" in str(err):
            raise InvalidJson(f"nested more than {max_depth} levels deep") from None
        raise InvalidJson(f"not valid JSON: {err}") from None
    found = problem(value, max_depth)
    if found is not None:
        raise InvalidJson(found[1], found[0])
    return value
