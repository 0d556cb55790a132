"""Search attributes the platform sets on campaign workflows.

One list, used both to register them on the embedded Temporal server and by the
workflows that upsert them, so the two can never drift apart. SQL-backed
visibility allows at most 10 Keyword attributes and 3 of each other type.
"""

from temporalio.common import SearchAttributeKey

ORGANIZATION = SearchAttributeKey.for_keyword("CampaignOrganization")
STATUS = SearchAttributeKey.for_keyword("CampaignStatus")
TYPE = SearchAttributeKey.for_keyword("CampaignType")
CHANNEL = SearchAttributeKey.for_keyword("CampaignChannel")
WINDOW_OPEN = SearchAttributeKey.for_bool("CampaignWindowOpen")

ALL: tuple[SearchAttributeKey, ...] = (ORGANIZATION, STATUS, TYPE, CHANNEL, WINDOW_OPEN)

_CLI_TYPE_NAMES = {
    "KEYWORD": "Keyword",
    "TEXT": "Text",
    "INT": "Int",
    "DOUBLE": "Double",
    "BOOL": "Bool",
    "DATETIME": "Datetime",
    "KEYWORD_LIST": "KeywordList",
}


def cli_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPE_NAMES[key.indexed_value_type.name]}"]
    return flags
