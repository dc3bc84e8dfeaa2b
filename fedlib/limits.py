"""Limits on what a user may attach to an instance, checked where a request enters (router) and again
where it is acted on (cell, agent): one definition so the layers can never disagree."""

from __future__ import annotations

from collections.abc import Mapping

from fedlib.errors import InvalidArgument

MAX_USER_DATA = 64 * 1024  # Nova's limit too: user data is configuration, not a payload channel
MAX_LABELS = 32
MAX_LABEL_KEY = 63
MAX_LABEL_VALUE = 255


def check_user_data(user_data: bytes) -> None:
    if len(user_data) > MAX_USER_DATA:
        raise InvalidArgument(
            f"user_data is {len(user_data)} bytes; the limit is {MAX_USER_DATA}", field="user_data"
        )


def check_labels(labels: Mapping[str, str]) -> None:
    if len(labels) > MAX_LABELS:
        raise InvalidArgument(f"labels has {len(labels)} entries; the limit is {MAX_LABELS}", field="labels")
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_KEY:
            raise InvalidArgument(f"label key {key[:80]!r} must be 1-{MAX_LABEL_KEY} chars", field="labels")
        if len(value) > MAX_LABEL_VALUE:
            raise InvalidArgument(
                f"label {key!r} value exceeds {MAX_LABEL_VALUE} chars", field=f"labels.{key}"
            )
