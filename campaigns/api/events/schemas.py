"""Request and response shapes of `POST /api/events`."""

from __future__ import annotations

from typing import Any

from pydantic import Field, TypeAdapter

from campaigns.domain.base import ResponseModel
from campaigns.domain.events import Batch


class DuplicateEvent(ResponseModel):
    index: int = Field(description="Position in the batch")
    id: str


class RejectedEvent(ResponseModel):
    index: int = Field(description="Position in the batch")
    id: str | None
    field: str = Field(description="The event's field at fault, e.g. 'data.amount'")
    reason: str


class IngestResult(ResponseModel):
    """Every event of the batch is in exactly one of: accepted, duplicates, rejected."""

    accepted: int = Field(description="Events recorded by this request")
    duplicates: int = Field(description="Events whose id was already recorded (or repeated in the batch)")
    rejected: int = Field(description="Events refused (see rejectedEvents)")
    duplicate_events: list[DuplicateEvent]
    rejected_events: list[RejectedEvent]


def batch_schema() -> dict[str, Any]:
    """The request body's JSON schema, for the OpenAPI document (the route reads raw bytes
    and validates event by event, so FastAPI does not see the model). References are
    inlined: the schema must stand on its own inside the operation."""
    schema = TypeAdapter(Batch).json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            # A discriminator's mapping points at the definitions being inlined: keep its property.
            return {
                k: ({"propertyName": v["propertyName"]} if k == "discriminator" else inline(v)) for k, v in node.items()
            }
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(schema)
