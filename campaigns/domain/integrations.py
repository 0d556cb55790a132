"""Integrations: typed endpoints that ride the webhook engine but send their own body.

- `http_push`: a JSON object built from the event by a field mapping — each output path
  (`contact.email`) takes the value of a JMESPath expression over the event envelope
  (`data.lead.email`), e.g. to push leads to a CRM.
- `slack`: a Slack-compatible incoming-webhook message (`{"text": …}`), from a template
  whose `{expression}` placeholders are JMESPath over the envelope, or a default
  sentence per event type.

Pure: the API validates configurations with these models, the dispatcher renders bodies.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import Field, field_validator

from campaigns.domain.base import ApiModel

_OUTPUT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def _compile(expression: str) -> Any:
    try:
        return jmespath.compile(expression)
    except JMESPathError as err:
        raise ValueError(f"{expression!r} is not a valid JMESPath expression: {err}") from None


class HttpPushConfig(ApiModel):
    field_mapping: Annotated[dict[str, str], Field(min_length=1, max_length=100)] = Field(
        description="Output path → JMESPath expression over the event {type, timestamp, data, id, "
        'campaignId, sequence}; e.g. {"contact.email": "data.lead.email"}.'
    )
    include_event: bool = Field(default=False, description="Also send the whole event under `event`.")

    @field_validator("field_mapping")
    @classmethod
    def _valid_mapping(cls, value: dict[str, str]) -> dict[str, str]:
        paths = sorted(value)
        for path, expression in value.items():
            if not _OUTPUT_PATH.fullmatch(path):
                raise ValueError(f"{path!r} is not an output path like 'contact.email'")
            _compile(expression)
        for a, b in zip(paths, paths[1:], strict=False):
            if b.startswith(a + "."):
                raise ValueError(f"{a!r} cannot be both a value and the parent of {b!r}")
        return value


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
    target[leaf] = value


def render_http_push(config: HttpPushConfig, event: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for path, expression in sorted(config.field_mapping.items()):
        _set_path(body, path, _search(expression, event))
    if config.include_event:
        body["event"] = event
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
    """The body an endpoint of `kind` receives for `event` (a webhook gets the event itself)."""
    if kind == "http_push":
        return render_http_push(HttpPushConfig.model_validate(config), event)
    if kind == "slack":
        return render_slack(SlackConfig.model_validate(config), event)
    return event
