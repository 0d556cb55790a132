"""Integrations: typed endpoints that ride the webhook engine but send their own body.

- `http_push`: a JSON object built from the event by a field mapping — each output path
  (`contact.email`) takes the value of a JMESPath expression over the event envelope
  (`data.lead.email`), e.g. to push leads to a CRM.
- `slack`: a Slack-compatible incoming-webhook message (`{"text": …}`), from a template
  whose `{expression}` placeholders are JMESPath over the envelope, or a default
  sentence per event type.

Pure: the API validates configurations with these models, the dispatcher renders bodies.

A template is a tenant's program run by the platform, so it runs bounded. Expressions are
capped in length and nesting when saved. Rendering counts its steps and the size each
value would take in the body as it goes, sharing one budget across the whole body, and
stops with `RenderError` as soon as either would pass its cap: `[@, @]` repeated doubles
a value without copying it, so the size is counted over shared parts (each once per use)
and nothing is materialised before it is known to fit. Callers render off the event loop
(`render_body` in a thread) and fail that one delivery with the reason.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.visitor import TreeInterpreter
from pydantic import Field, ValidationError, field_validator, model_validator

from campaigns.domain.base import ApiModel
from campaigns.domain.webhooks import dumps

_OUTPUT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")

MAX_EXPRESSION_LENGTH = 300
MAX_EXPRESSION_DEPTH = 12  # pipes, function calls, selections nested in one another
MAX_RENDER_STEPS = 200_000  # expression nodes evaluated for one body (well under a second)
DEFAULT_MAX_BYTES = 256 * 1024  # the server's WEBHOOK_MAX_PAYLOAD_BYTES default
EVENT_KEY = "event"  # where includeEvent puts the whole event


class RenderError(Exception):
    """A body could not be rendered; the message says why (the delivery's error)."""


class PathConflict(RenderError):
    """Two output paths claim the same place: one is a value, the other goes through it."""


def _depth(tree: Any) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in [*node.get("children", ()), node.get("value")]:
            if isinstance(child, dict) and "type" in child:
                stack.append((child, depth + 1))
    return deepest


def _compile(expression: str) -> Any:
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ValueError(f"{expression[:40]!r}… is longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        compiled = jmespath.compile(expression)
    except JMESPathError as err:
        raise ValueError(f"{expression!r} is not a valid JMESPath expression: {err}") from None
    except RecursionError:
        raise ValueError(f"{expression!r} is nested too deeply") from None
    if _depth(compiled.parsed) > MAX_EXPRESSION_DEPTH:
        raise ValueError(
            f"{expression!r} is nested too deeply (at most {MAX_EXPRESSION_DEPTH} levels of pipes, "
            "function calls and selections)"
        )
    return compiled


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


class _Budget:
    """What one body may still cost: steps, and bytes of its JSON text."""

    def __init__(self, max_bytes: int, max_steps: int) -> None:
        self.max_bytes = max_bytes
        self.steps_left = max_steps
        self.used = 0
        # Sizes of containers already measured, kept with the container so its id is not
        # reused while the body is rendered.
        self._sizes: dict[int, tuple[Any, int]] = {}

    def step(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise RenderError("the template takes too many steps to render")

    def too_big(self) -> RenderError:
        return RenderError(
            f"the rendered body (or a value computed for it) would exceed the {self.max_bytes}-byte payload cap"
        )

    def size(self, value: Any) -> int:
        """A lower bound of the bytes `value` takes in the body's JSON, counting a part
        shared by several places once per place; raises as soon as it passes the cap."""
        if value is None or isinstance(value, bool):
            return 5 if value is False else 4
        if isinstance(value, int):
            return len(str(value)) if -(10**18) < value < 10**18 else value.bit_length() // 4
        if isinstance(value, float):
            return len(repr(value))
        if isinstance(value, str):
            return len(value) + 2
        if not isinstance(value, list | dict):
            return 1
        known = self._sizes.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        total = 2 + max(len(value) - 1, 0)
        if isinstance(value, dict):
            for key, item in value.items():
                total += len(str(key)) + 3 + self.size(item)
                if total > self.max_bytes:
                    raise self.too_big()
        else:
            for item in value:
                total += self.size(item)
                if total > self.max_bytes:
                    raise self.too_big()
        self._sizes[id(value)] = (value, total)
        return total

    def spend(self, size: int) -> None:
        """Commit `size` more bytes to the body."""
        self.used += size
        if self.used > self.max_bytes:
            raise self.too_big()


class _BoundedInterpreter(TreeInterpreter):
    """jmespath's interpreter, checking the budget at every node it evaluates (functions
    that take expressions, like `map` and `sort_by`, come back through here too)."""

    def __init__(self, budget: _Budget) -> None:
        super().__init__()
        self.budget = budget

    def visit(self, node: Any, *args: Any, **kwargs: Any) -> Any:
        self.budget.step()
        result = super().visit(node, *args, **kwargs)
        self.budget.size(result)
        return result


class HttpPushConfig(ApiModel):
    field_mapping: Annotated[dict[str, str], Field(min_length=1, max_length=100)] = Field(
        description="Output path → JMESPath expression over the event {type, timestamp, data, id, "
        'campaignId, sequence}; e.g. {"contact.email": "data.lead.email"}.'
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


def _search(expression: str, event: dict[str, Any], interpreter: _BoundedInterpreter) -> Any:
    """The value of `expression`, or None where it does not apply to this event (a type
    error in a function, say): one odd event must not stop the others. Passing a bound is
    not such a case: it fails the body."""
    try:
        tree = _compile(expression).parsed
    except ValueError as err:  # saved before the rules it breaks
        raise RenderError(str(err)) from None
    try:
        return interpreter.visit(tree, event)
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


def render_http_push(
    config: HttpPushConfig,
    event: dict[str, Any],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_steps: int = MAX_RENDER_STEPS,
) -> dict[str, Any]:
    budget = _Budget(max_bytes, max_steps)
    interpreter = _BoundedInterpreter(budget)
    body: dict[str, Any] = {}
    for path, expression in sorted(config.field_mapping.items()):
        value = _search(expression, event, interpreter)
        budget.spend(len(path) + 4 + budget.size(value))
        _set_path(body, path, value)
    if config.include_event:
        if EVENT_KEY in body:
            raise PathConflict(f"output path {EVENT_KEY!r} is where includeEvent puts the event")
        budget.spend(len(EVENT_KEY) + 4 + budget.size(event))
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


def render_slack(
    config: SlackConfig,
    event: dict[str, Any],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_steps: int = MAX_RENDER_STEPS,
) -> dict[str, Any]:
    budget = _Budget(max_bytes, max_steps)
    interpreter = _BoundedInterpreter(budget)
    template = config.template or _DEFAULT_TEXT.get(event.get("type", ""), "Event *{type}* in campaign {campaignId}.")
    budget.spend(len(template))

    def placeholder(match: re.Match[str]) -> str:
        text = _text(_search(match.group(1), event, interpreter))  # its value was measured first
        budget.spend(len(text))
        return text

    body: dict[str, Any] = {"text": _PLACEHOLDER.sub(placeholder, template)}
    for key, value in (("channel", config.channel), ("username", config.username), ("icon_emoji", config.icon_emoji)):
        if value:
            body[key] = value
    return body


def render(
    kind: str,
    config: dict[str, Any],
    event: dict[str, Any],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_steps: int = MAX_RENDER_STEPS,
) -> dict[str, Any]:
    """The body an endpoint of `kind` receives for `event` (a webhook gets the event itself).
    Raises RenderError past a bound, and whatever a broken saved configuration raises."""
    if kind == "http_push":
        return render_http_push(HttpPushConfig.model_validate(config), event, max_bytes=max_bytes, max_steps=max_steps)
    if kind == "slack":
        return render_slack(SlackConfig.model_validate(config), event, max_bytes=max_bytes, max_steps=max_steps)
    return event


def render_body(
    kind: str, config: dict[str, Any], event: dict[str, Any], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[str, str | None]:
    """The body text for one delivery, or `("null", why)` when it cannot be rendered:
    whatever a template does, it fails its own delivery and no other. CPU-bound and
    bounded: call it off the event loop."""
    try:
        return dumps(render(kind, config, event, max_bytes=max_bytes)), None
    except RenderError as err:
        return "null", str(err)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in err.errors()[:3])
        return "null", f"the saved configuration is not valid: {problems}"[:500]
    except Exception as err:  # noqa: BLE001 - see the docstring
        return "null", f"rendering failed: {type(err).__name__}: {err}"[:500]
