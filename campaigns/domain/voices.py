"""The text-to-speech voices the pipeline can speak with.

`aura-1` and `aura-2` are the model families of the specification (the pipeline picks
its default speaker); the named voices pin a speaker. `GET /api/voices` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Voice:
    id: str
    model: str
    languages: tuple[str, ...]
    gender: str | None = None


VOICES: tuple[Voice, ...] = (
    Voice("aura-1", "aura-1", ("en",)),
    Voice("aura-2", "aura-2", ("en", "es")),
    Voice("aura-asteria-en", "aura-1", ("en",), "female"),
    Voice("aura-orion-en", "aura-1", ("en",), "male"),
    Voice("aura-2-thalia-en", "aura-2", ("en",), "female"),
    Voice("aura-2-apollo-en", "aura-2", ("en",), "male"),
    Voice("aura-2-celeste-es", "aura-2", ("es",), "female"),
    Voice("aura-2-nestor-es", "aura-2", ("es",), "male"),
)

_BY_ID = {v.id: v for v in VOICES}


def known_voice(value: str) -> str:
    if value not in _BY_ID:
        raise ValueError(f"{value!r} is not a known voice; known voices: {', '.join(_BY_ID)}")
    return value


def get(voice_id: str) -> Voice | None:
    return _BY_ID.get(voice_id)
