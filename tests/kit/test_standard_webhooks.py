"""The signer agrees with the Standard Webhooks reference library, both ways."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
from hypothesis import given
from hypothesis import strategies as st

from bulkcall.kit.standard_webhooks import SignatureError, new_secret, sign, verify

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@given(
    message_id=st.text(min_size=1, alphabet=st.characters(min_codepoint=33, max_codepoint=126)),
    payload=st.dictionaries(st.text(), JSON_VALUES),
)
def test_reference_library_accepts_our_signature(message_id: str, payload: dict[str, object]) -> None:
    # The reference library parses the body as JSON (webhook bodies always are).
    body = json.dumps(payload).encode()
    secret = new_secret()
    now = int(time.time())
    headers = sign(secret, message_id, now, body).as_dict()
    standardwebhooks.Webhook(secret).verify(body, headers)  # raises on mismatch


def test_we_accept_the_reference_library_signature() -> None:
    secret = new_secret()
    body = b'{"type": "call.completed"}'
    stamp = datetime.now(UTC)
    reference = standardwebhooks.Webhook(secret).sign("msg_1", stamp, body.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(stamp.timestamp())), "webhook-signature": reference}
    assert verify(secret, headers, body, now=stamp.timestamp()) == "msg_1"


def test_any_of_several_signatures_matches_for_rotation() -> None:
    old, new = new_secret(), new_secret()
    headers = sign(old, "m", 100, b"x").as_dict()
    headers["webhook-signature"] = sign(new, "m", 100, b"x").signature + " " + headers["webhook-signature"]
    assert verify(old, headers, b"x", now=100) == "m"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"body": b"y"}, "no webhook-signature matches"),
        ({"now": 100 + 301}, "more than 300 s"),
        ({"now": 100 - 301}, "more than 300 s"),
        ({"drop": "webhook-id"}, "missing"),
        ({"timestamp": "soon"}, "not an integer"),
    ],
)
def test_verification_fails_with_a_reason(change: dict[str, object], reason: str) -> None:
    secret = new_secret()
    headers = sign(secret, "m", 100, b"x").as_dict()
    if "drop" in change:
        del headers[str(change["drop"])]
    if "timestamp" in change:
        headers["webhook-timestamp"] = str(change["timestamp"])
    body = change.get("body", b"x")
    now = change.get("now", 100)
    assert isinstance(body, bytes)
    assert isinstance(now, int)
    with pytest.raises(SignatureError, match=reason):
        verify(secret, headers, body, now=now)


def test_wrong_secret_fails() -> None:
    headers = sign(new_secret(), "m", 100, b"x").as_dict()
    with pytest.raises(SignatureError):
        verify(new_secret(), headers, b"x", now=100)
