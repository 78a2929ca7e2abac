"""The variables an agent gets for one call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Contact fields exposed to the agent, under these names.
CONTACT_VARIABLES: tuple[str, ...] = (
    "contact_id",
    "phone_e164",
    "first_name",
    "last_name",
    "email",
    "company",
    "timezone",
    "country",
)


def task_variables(
    call_variables: Mapping[str, Any], contact: Mapping[str, Any] | None, custom_fields: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The campaign's ``call_variables``, overlaid by the contact's fields, then by its custom fields.

    The more specific value wins; an empty (null) contact value never hides a campaign variable.
    """
    merged = dict(call_variables)
    if contact is not None:
        merged.update({name: contact[name] for name in CONTACT_VARIABLES if contact.get(name) is not None})
    if custom_fields:
        merged.update({key: value for key, value in custom_fields.items() if value is not None})
    return merged
