"""The base for every JSON model: camelCase on the wire, snake_case in Python,
unknown fields refused (a typo in a field name is an error, not a silent no-op)."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        str_strip_whitespace=True,
    )


class ResponseModel(BaseModel):
    """Output-only models: camelCase, but tolerant of extra fields added later."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
