"""Names under hostile input: a trailing newline never passes (fullmatch, not `$` with match), and an
error never echoes a huge value back."""

from __future__ import annotations

import pytest

from fedlib.errors import InvalidArgument
from fedlib.names import check_display_name, check_id, check_tenant


@pytest.mark.parametrize("check", [check_id, check_tenant, check_display_name], ids=lambda f: f.__name__)
@pytest.mark.parametrize("value", ["par1\n", "par1\r\n", "\npar1", "par1 ", "", None, 7])
def test_only_the_whole_value_counts(check: object, value: object) -> None:
    with pytest.raises(InvalidArgument) as err:
        check(value, "f")  # type: ignore[operator]
    assert err.value.field == "f"


@pytest.mark.parametrize("check", [check_id, check_tenant, check_display_name], ids=lambda f: f.__name__)
def test_a_huge_value_is_not_echoed_back(check: object) -> None:
    with pytest.raises(InvalidArgument) as err:
        check("x" * 100_000 + "!", "f")  # type: ignore[operator]
    assert len(err.value.message) < 300 and "100003 chars" in err.value.message
