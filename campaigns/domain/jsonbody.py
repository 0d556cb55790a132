"""Reading a JSON request body without letting its shape hurt the reader.

Parsed by orjson (in C: no recursion of ours, and it refuses NaN and Infinity, which JSON
does not have), then measured: a document nested deeper than the limit is refused before
any model, encoder or recursive function walks it. Measuring is a walk over containers
only, so a flat body of any size costs little.
"""

from __future__ import annotations

from typing import Any

import orjson

DEFAULT_MAX_DEPTH = 32


class InvalidJson(ValueError):
    """Not JSON, or nested too deep; the message says which, for the client."""


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests objects and arrays more than `limit` levels deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def loads(body: bytes | str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The JSON document in `body`; InvalidJson if it is not one or nests too deep."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        if "depth limit" in str(err):
            raise InvalidJson(f"nested more than {max_depth} levels deep") from None
        raise InvalidJson(f"not valid JSON: {err}") from None
    if depth_exceeds(value, max_depth):
        raise InvalidJson(f"nested more than {max_depth} levels deep")
    return value
