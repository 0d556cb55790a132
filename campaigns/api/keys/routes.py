"""API keys of the caller's organization, and the voice catalogue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path
from pydantic import Field

from campaigns.api.auth import repository as repo
from campaigns.api.auth.service import create_key, forget
from campaigns.api.deps import Caller, Db
from campaigns.api.errors import NotFound
from campaigns.domain.base import ApiModel, ResponseModel
from campaigns.domain.voices import VOICES

router = APIRouter(tags=["organization"])


class KeyCreate(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=100)] = "default"


class ApiKey(ResponseModel):
    id: str
    organization_id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    key: str | None = Field(default=None, description="The key itself: shown once, at creation.")


def _key(row, secret: str | None = None) -> ApiKey:
    data = dict(row)
    data.pop("key_hash", None)
    data["id"], data["organization_id"] = str(data["id"]), str(data["organization_id"])
    return ApiKey(**data, key=secret)


@router.get("/api/keys")
async def list_keys(caller: Caller, db: Db) -> dict:
    """List the organization's API keys (never the keys themselves)."""
    return {"keys": [_key(r) for r in await repo.list_keys(db, caller.organization_id)]}


@router.post("/api/keys", status_code=201)
async def create_api_key(body: KeyCreate, caller: Caller, db: Db) -> dict:
    """Create another API key for the organization; the key is in the answer only."""
    secret, row = await create_key(db, organization=caller.organization_name, name=body.name)
    return {"key": _key(row, secret)}


@router.delete("/api/keys/{id}")
async def revoke_api_key(key_id: Annotated[UUID, Path(alias="id")], caller: Caller, db: Db) -> dict:
    """Revoke an API key of the organization (effective at once)."""
    row = await repo.revoke_key(db, organization_id=caller.organization_id, key_id=key_id)
    if row is None:
        raise NotFound("API key not found", code="key_not_found")
    await forget(db, row["key_hash"])
    return {"key": _key(row)}


@router.get("/api/voices")
async def list_voices(caller: Caller) -> dict:
    """The text-to-speech voices a campaign may use."""
    return {
        "voices": [{"id": v.id, "model": v.model, "languages": list(v.languages), "gender": v.gender} for v in VOICES]
    }
