"""The OpenAPI document tells the truth: every error an operation answers is documented with
the error schema (no 422, which the API never sends), and every number a client sends is
bounded (an int64 at most, a finite float of sane magnitude)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from campaigns.api.app import create_app
from campaigns.settings import Settings

INT64_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings(_env_file=None)).openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def resolve(document: dict[str, Any], schema: Any) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def numbers(document: dict[str, Any], schema: Any, where: str, seen: set[str]) -> Iterator[tuple[str, dict]]:
    """Every integer or number schema reachable from `schema`, with where it is."""
    if isinstance(schema, dict) and "$ref" in schema:
        name = schema["$ref"]
        if name in seen:
            return
        seen = seen | {name}
    schema = resolve(document, schema)
    if not isinstance(schema, dict):
        return
    if schema.get("type") in ("integer", "number"):
        yield where, schema
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from numbers(document, option, where, seen)
    for name, sub in schema.get("properties", {}).items():
        yield from numbers(document, sub, f"{where}.{name}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from numbers(document, schema[key], f"{where}[]", seen)


def test_no_operation_documents_a_422_and_every_error_has_the_error_schema(document):
    for name, operation in operations(document):
        assert "422" not in operation["responses"], name
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                schemas = [c.get("schema", {}) for c in response.get("content", {}).values()]
                assert schemas, (name, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_errors_are_derived_from_what_each_route_does(document):
    responses = {name: set(op["responses"]) for name, op in operations(document)}
    # A key, a path id, a merge-patch body, If-Match, a lifecycle change through the workflow.
    assert {"400", "401", "403", "404", "409", "412", "413", "429", "503"} <= responses["PUT /api/campaigns/{id}"]
    assert {"401", "403", "404", "409", "429", "503"} <= responses["POST /api/campaigns/{id}/pause"]
    assert "412" not in responses["POST /api/campaigns/{id}/pause"]
    assert {"400", "401", "403", "413", "429"} <= responses["POST /api/events"]
    assert "404" not in responses["POST /api/events"]
    assert responses["GET /healthz"] == {"200"}
    assert {"403", "404", "409", "413", "429"} <= responses["POST /embed/events"]
    assert "401" not in responses["POST /embed/events"]
    assert "409" in responses["POST /api/keys"]
    assert document["paths"]["/api/keys"]["post"]["security"] == [{"HTTPBearer": ["admin"]}]
    events = document["paths"]["/api/events"]["post"]
    assert "16777216 bytes" in events["responses"]["413"]["description"]
    assert "Retry-After" in events["responses"]["429"]["headers"]


def test_every_number_a_client_sends_is_bounded(document):
    unbounded = []
    for name, operation in operations(document):
        sources = [(f"query.{p['name']}", p.get("schema", {})) for p in operation.get("parameters", [])]
        for media in operation.get("requestBody", {}).get("content", {}).values():
            sources.append(("body", media.get("schema", {})))
        for where, schema in sources:
            for field, number in numbers(document, schema, where, set()):
                top = number.get("maximum", number.get("exclusiveMaximum"))
                bottom = number.get("minimum", number.get("exclusiveMinimum"))
                # (2**63 as a float is how an int64 bound can come out of JSON schema generation.)
                if top is None or bottom is None or top > (2**63 if number["type"] == "integer" else 1e15):
                    unbounded.append(f"{name} {field}: {number}")
    assert not unbounded, "\n".join(unbounded)
