"""API keys of the caller's organization, and the voice catalogue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path
from pydantic import AfterValidator, Field, WithJsonSchema, field_validator

from campaigns.api.bodies import JsonRoute
from campaigns.api.deps import Admin, AppSettings, Db, Principals, Reader
from campaigns.auth import scopes, service
from campaigns.domain.base import ApiModel, ResponseModel
from campaigns.domain.voices import VOICES

router = APIRouter(tags=["organization"], route_class=JsonRoute)


def _known(scope: str) -> str:
    if scope not in scopes.ALL:
        raise ValueError(f"unknown scope {scope!r}; known: {', '.join(scopes.ALL)}")
    return scope


Scope = Annotated[str, AfterValidator(_known), WithJsonSchema({"type": "string", "enum": list(scopes.ALL)})]


class KeyCreate(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=100)] = "default"
    scopes: list[Scope] = Field(
        min_length=1,
        max_length=len(scopes.ALL),
        description="What the key may do (a key cannot grant a scope its maker lacks); see the docs' scope table.",
    )

    @field_validator("scopes")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("scopes repeat")
        return value


class ApiKey(ResponseModel):
    id: str
    organization_id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    key: str | None = Field(default=None, description="The key itself: shown once, at creation.")


def _key(row, secret: str | None = None) -> ApiKey:
    data = dict(row)
    data.pop("key_hash", None)
    data["id"], data["organization_id"] = str(data["id"]), str(data["organization_id"])
    data["scopes"] = list(data["scopes"])
    return ApiKey(**data, key=secret)


@router.get("/api/keys")
async def list_keys(caller: Admin, db: Db) -> dict:
    """List the organization's API keys (never the keys themselves)."""
    return {"keys": [_key(r) for r in await service.list_keys(pool=db, principal=caller)]}


@router.post(
    "/api/keys",
    status_code=201,
    responses={409: {"description": "The organization has as many active keys as it may (`key_limit_reached`)."}},
)
async def create_api_key(body: KeyCreate, caller: Admin, db: Db, settings: AppSettings) -> dict:
    """Create another API key for the organization, with its scopes; the key is in the answer only."""
    secret, row = await service.mint_key(
        pool=db,
        principal=caller,
        name=body.name,
        scopes=body.scopes,
        max_keys=settings.max_api_keys_per_organization,
    )
    return {"key": _key(row, secret)}


@router.delete("/api/keys/{id}")
async def revoke_api_key(
    key_id: Annotated[UUID, Path(alias="id")], caller: Admin, db: Db, principals: Principals
) -> dict:
    """Revoke an API key of the organization (effective at once)."""
    row = await service.revoke_key(pool=db, principals=principals, principal=caller, key_id=key_id)
    return {"key": _key(row)}


@router.get("/api/voices")
async def list_voices(caller: Reader) -> dict:
    """The text-to-speech voices a campaign may use."""
    return {
        "voices": [{"id": v.id, "model": v.model, "languages": list(v.languages), "gender": v.gender} for v in VOICES]
    }
