"""Signing secrets: made (`whsec_…`, Standard Webhooks), encrypted at rest, used to sign.

Encryption is Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with keys from
WEBHOOK_SECRET_KEYS; MultiFernet lets an operator add a new key in front and re-encrypt
at leisure. Signatures come from the `standardwebhooks` reference implementation, so
what we sign is exactly what its verifier checks. A receiver's URL and custom header values
are credentials too (`seal`, `unseal`), encrypted with the same keys.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from standardwebhooks.webhooks import Webhook

from campaigns.settings import Settings

log = logging.getLogger("campaigns.webhooks")

PREFIX = "whsec_"


class UndecryptableSecret(RuntimeError):
    """A stored secret was encrypted with a key WEBHOOK_SECRET_KEYS no longer holds."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key_file(data_dir: Path) -> list[bytes]:
    """The embedded default: one key made on first use, readable by this user only."""
    path = data_dir / "webhook-secret.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
        log.warning("WEBHOOK_SECRET_KEYS is not set: made a key in %s (set it when running several machines)", path)
    key = path.read_bytes().strip()
    if not key:  # another process is writing it this very moment
        import time

        time.sleep(0.1)
        key = path.read_bytes().strip()
    return [key]


@lru_cache(maxsize=8)
def _box(keys: str | None, data_dir: str) -> MultiFernet:
    raw = [k.strip().encode() for k in keys.split(",") if k.strip()] if keys else _key_file(Path(data_dir))
    try:
        return MultiFernet([Fernet(k) for k in raw])
    except ValueError as err:
        raise ValueError(f"WEBHOOK_SECRET_KEYS: each key must be a Fernet key ({err})") from None


def box(settings: Settings) -> MultiFernet:
    return _box(settings.webhook_secret_keys, str(settings.data_dir.resolve()))


def encrypt(settings: Settings, secret: str) -> str:
    return box(settings).encrypt(secret.encode()).decode()


def decrypt(settings: Settings, token: str) -> str:
    try:
        return box(settings).decrypt(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableSecret(
            "a webhook secret cannot be decrypted: WEBHOOK_SECRET_KEYS lacks the key it was encrypted with"
        ) from None


def signature(secrets_: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """The `webhook-signature` header: one `v1,<base64>` per secret, space-separated (during
    a rotation both the new and the old secret sign, so receivers may switch at any time)."""
    ts = timestamp.astimezone(UTC)
    return " ".join(Webhook(s).sign(msg_id, ts, body) for s in secrets_)


# --- A receiver's credentials: its URL and custom header values ---------------------------


def seal(settings: Settings, url: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The URL and header values as stored: encrypted, like the signing secrets."""
    return encrypt(settings, url), {name: encrypt(settings, value) for name, value in headers.items()}


def unseal(settings: Settings, row: Mapping[str, Any] | asyncpg.Record) -> tuple[str, dict[str, str]]:
    """An endpoint row's URL and header values in clear (rows written before they were
    encrypted, not yet migrated, are read as they are)."""
    headers = row["headers"] or {}
    if not row["credentials_encrypted"]:
        return row["url"], dict(headers)
    return decrypt(settings, row["url"]), {name: decrypt(settings, value) for name, value in headers.items()}
