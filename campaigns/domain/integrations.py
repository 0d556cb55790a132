"""Integrations: typed endpoints that ride the webhook engine but send their own body.

- `http_push`: a JSON object built from the event by a field mapping — each output path
  (`contact.email`) takes the value of a JMESPath expression over the event envelope
  (`data.lead.email`), e.g. to push leads to a CRM.
- `slack`: a Slack-compatible incoming-webhook message (`{"text": …}`), from a template
  whose `{expression}` placeholders are JMESPath over the envelope, or a default
  sentence per event type.

Pure: the API validates configurations with these models, the dispatcher renders bodies.

A body that cannot be rendered fails its own delivery (`render_body`), never the others.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import Field, ValidationError, field_validator, model_validator

from campaigns.domain.base import ApiModel
from campaigns.domain.webhooks import dumps

_OUTPUT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")

EVENT_KEY = "event"  # where includeEvent puts the whole event


class RenderError(Exception):
    """A body could not be rendered; the message says why (the delivery's error)."""


class PathConflict(RenderError):
    """Two output paths claim the same place: one is a value, the other goes through it."""


def _compile(expression: str) -> Any:
    try:
        return jmespath.compile(expression)
    except JMESPathError as err:
        raise ValueError(f"{expression!r} is not a valid JMESPath expression: {err}") from None


def output_path_conflict(paths: list[str]) -> tuple[str, str] | None:
    """Two output paths that cannot both be written, (value, path through it), or None.
    Seen as a tree: a path is a leaf, so none of its prefixes may be one, in any order."""
    leaves = set(paths)
    for path in sorted(paths):
        parts = path.split(".")
        for end in range(1, len(parts)):
            prefix = ".".join(parts[:end])
            if prefix in leaves:
                return prefix, path
    return None


class HttpPushConfig(ApiModel):
    field_mapping: Annotated[dict[str, str], Field(min_length=1, max_length=100)] = Field(
        description="Output path → JMESPath expression over the event {type, timestamp, data, id, "
        "campaignId, sequence}; e.g. {\"contact.email\": \"data.lead.email\"}."
    )
    include_event: bool = Field(default=False, description="Also send the whole event under `event`.")

    @field_validator("field_mapping")
    @classmethod
    def _valid_mapping(cls, value: dict[str, str]) -> dict[str, str]:
        for path, expression in value.items():
            if not _OUTPUT_PATH.fullmatch(path):
                raise ValueError(f"{path!r} is not an output path like 'contact.email'")
            _compile(expression)
        conflict = output_path_conflict(list(value))
        if conflict:
            raise ValueError(f"{conflict[0]!r} cannot be both a value and the parent of {conflict[1]!r}")
        return value

    @model_validator(mode="after")
    def _event_key_free(self) -> HttpPushConfig:
        if self.include_event and any(p.split(".")[0] == EVENT_KEY for p in self.field_mapping):
            raise ValueError(f"with includeEvent the whole event goes under {EVENT_KEY!r}: map to another path")
        return self


class SlackConfig(ApiModel):
    template: Annotated[str, Field(min_length=1, max_length=3000)] | None = Field(
        default=None,
        description="Message text with {JMESPath} placeholders, e.g. '{type}: {data.name}'. "
        "Default: a sentence per event type.",
    )
    channel: Annotated[str, Field(max_length=80)] | None = None
    username: Annotated[str, Field(max_length=80)] | None = None
    icon_emoji: Annotated[str, Field(pattern=r"^:[a-z0-9_+\-]+:$")] | None = None

    @field_validator("template")
    @classmethod
    def _valid_template(cls, value: str | None) -> str | None:
        if value is not None:
            for expression in _PLACEHOLDER.findall(value):
                _compile(expression)
        return value


IntegrationType = Literal["http_push", "slack"]
CONFIG_MODELS: dict[str, type[ApiModel]] = {"http_push": HttpPushConfig, "slack": SlackConfig}


def _search(expression: str, event: dict[str, Any]) -> Any:
    """The value of `expression`, or None where it does not apply to this event (a type
    error in a function, say): one odd event must not stop the others."""
    try:
        return _compile(expression).search(event)
    except (JMESPathError, ValueError, TypeError):
        return None


def _set_path(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise PathConflict(f"output path {path!r} goes through a value")
    if leaf in target:
        raise PathConflict(f"output path {path!r} is already taken")
    target[leaf] = value


def render_http_push(config: HttpPushConfig, event: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for path, expression in sorted(config.field_mapping.items()):
        _set_path(body, path, _search(expression, event))
    if config.include_event:
        if EVENT_KEY in body:
            raise PathConflict(f"output path {EVENT_KEY!r} is where includeEvent puts the event")
        body[EVENT_KEY] = event
    return body


_DEFAULT_TEXT = {
    "campaign.created": "Campaign *{data.name}* was created.",
    "campaign.scheduled": "Campaign *{data.name}* is scheduled.",
    "campaign.activated": "Campaign *{data.name}* is live.",
    "campaign.paused": "Campaign *{data.name}* was paused.",
    "campaign.resumed": "Campaign *{data.name}* resumed.",
    "campaign.ended": "Campaign *{data.name}* ended.",
    "campaign.archived": "Campaign *{data.name}* was archived.",
    "goal.achieved": "A goal of campaign {campaignId} was achieved.",
    "budget.exhausted": "Campaign {campaignId} exhausted its budget.",
    "lead.created": "New lead in campaign {campaignId}.",
    "webhook.test": "Test message from Quantum Campaigns.",
}


def _text(value: Any) -> str:
    if value is None:
        return "–"
    return str(value)


def render_slack(config: SlackConfig, event: dict[str, Any]) -> dict[str, Any]:
    template = config.template or _DEFAULT_TEXT.get(event.get("type", ""), "Event *{type}* in campaign {campaignId}.")
    text = _PLACEHOLDER.sub(lambda m: _text(_search(m.group(1), event)), template)
    body: dict[str, Any] = {"text": text}
    for key, value in (("channel", config.channel), ("username", config.username), ("icon_emoji", config.icon_emoji)):
        if value:
            body[key] = value
    return body


def render(kind: str, config: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The body an endpoint of `kind` receives for `event` (a webhook gets the event itself).
    Raises RenderError, and whatever a broken saved configuration raises."""
    if kind == "http_push":
        return render_http_push(HttpPushConfig.model_validate(config), event)
    if kind == "slack":
        return render_slack(SlackConfig.model_validate(config), event)
    return event


def render_body(kind: str, config: dict[str, Any], event: dict[str, Any]) -> tuple[str, str | None]:
    """The body text for one delivery, or `("null", why)` when it cannot be rendered:
    whatever a template does, it fails its own delivery and no other."""
    try:
        return dumps(render(kind, config, event)), None
    except RenderError as err:
        return "null", str(err)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in err.errors()[:3])
        return "null", f"the saved configuration is not valid: {problems}"[:500]
    except Exception as err:  # noqa: BLE001 - see the docstring
        return "null", f"rendering failed: {type(err).__name__}: {err}"[:500]
