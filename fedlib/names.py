"""Validation of the names every API shares: sites, cells, tenants, instance display names."""

from __future__ import annotations

import re

from fedlib.errors import InvalidArgument

# Site, cell and region ids appear in keyspace names, hostnames and metric labels: keep them DNS-label like
# and short enough for a Cassandra keyspace name (48 chars) with a prefix.
# Matched with fullmatch: `$` with match lets a trailing newline through ("x\n" passed as a name).
_ID = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]")
_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_DISPLAY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def shown(value: object, limit: int = 80) -> str:
    """A bad value as an error message quotes it: repr'd, and cut so a huge value is not echoed back."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def check_id(value: str, field: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidArgument(
            f"{field} {shown(value)} must be 2-32 lowercase letters, digits or '-', starting with a letter",
            field=field,
        )
    return value


def check_tenant(value: str, field: str = "tenant") -> str:
    if not isinstance(value, str) or not _TENANT.fullmatch(value):
        raise InvalidArgument(
            f"{field} {shown(value)} must be 1-63 lowercase letters, digits, '_' or '-'", field=field
        )
    return value


def check_display_name(value: str, field: str = "name") -> str:
    if not isinstance(value, str) or not _DISPLAY_NAME.fullmatch(value):
        raise InvalidArgument(
            f"{field} {shown(value)} must be 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            field=field,
        )
    return value


def keyspace_for_cell(cell_id: str, prefix: str = "cellfed_cell_") -> str:
    """A cell's own keyspace name; Cassandra keyspace names allow only [a-z0-9_]."""
    check_id(cell_id, "cell_id")
    return prefix + cell_id.replace("-", "_")
