from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bulkcall.domain.variables import task_variables

scalars = st.none() | st.text(max_size=5) | st.integers()
objects = st.dictionaries(st.sampled_from(["first_name", "company", "plan", "offer", "x"]), scalars, max_size=5)


def test_contact_fields_override_call_variables_and_custom_fields_override_both() -> None:
    merged = task_variables(
        {"company": "Default Co", "offer": "spring"},
        {"contact_id": 7, "first_name": "Ada", "company": "Acme", "email": None},
        {"offer": "vip", "plan": "pro"},
    )
    assert merged == {"company": "Acme", "offer": "vip", "contact_id": 7, "first_name": "Ada", "plan": "pro"}


def test_empty_contact_values_do_not_hide_campaign_variables() -> None:
    assert task_variables({"company": "Default Co"}, {"company": None}, {"company": None}) == {"company": "Default Co"}


def test_without_a_contact_only_call_variables_remain() -> None:
    assert task_variables({"offer": "spring"}, None, None) == {"offer": "spring"}


@given(call=objects, contact=objects, custom=objects)
def test_every_key_comes_from_the_most_specific_non_null_source(
    call: dict[str, Any], contact: dict[str, Any], custom: dict[str, Any]
) -> None:
    merged = task_variables(call, contact, custom)
    for key, value in merged.items():
        if custom.get(key) is not None:
            assert value == custom[key]
        elif key in ("first_name", "company") and contact.get(key) is not None:
            assert value == contact[key]
        else:
            assert value == call[key]
