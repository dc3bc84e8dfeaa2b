"""The operators' `keys generate` and `token mint` commands, driven through click as an operator would."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cellapi.auth.cli import keys_group, parse_duration, token_group
from cellapi.auth.keys import load_public_keys
from cellapi.auth.tokens import Verifier


def run(group: object, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(group, list(args))  # type: ignore[arg-type]
    return result.exit_code, result.output


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("12h", 43200),
                                               ("7d", 604800), (" 1H ", 3600)])  # fmt: skip
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1w", "-5m", "1.5h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_generate_then_mint_verifies(tmp_path: Path) -> None:
    code, out = run(keys_group, "generate", "--keys-dir", str(tmp_path), "--key-id", "k1")
    assert code == 0 and "k1.key" in out and "k1.pub" in out
    code, out = run(token_group, "mint", "--keys-dir", str(tmp_path), "--key-id", "k1", "--tenant", "ops",
                    "--role", "admin", "--role", "user", "--ttl", "2h", "--subject", "carol")  # fmt: skip
    assert code == 0, out
    claims = Verifier(load_public_keys(tmp_path)).verify(out.strip(), time.time())
    assert (claims.subject, claims.tenant, claims.roles) == ("carol", "ops", frozenset({"admin", "user"}))
    assert 7000 < claims.expires_at - time.time() <= 7200


def test_mint_json_defaults_to_user(tmp_path: Path) -> None:
    run(keys_group, "generate", "--keys-dir", str(tmp_path), "--key-id", "k1")
    code, out = run(token_group, "mint", "--keys-dir", str(tmp_path), "--key-id", "k1", "--tenant", "acme",
                    "--subject", "alice", "--output", "json")  # fmt: skip
    assert code == 0, out
    document = json.loads(out)
    assert (document["roles"], document["tenant"], document["key_id"]) == (["user"], "acme", "k1")
    assert Verifier(load_public_keys(tmp_path)).verify(document["token"], time.time()).tenant == "acme"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--key-id", "missing"], "no private key"),
        (["--key-id", "k1", "--tenant", "Not Valid"], "tenant"),
        (["--key-id", "k1", "--ttl", "30d"], "ttl"),
        (["--key-id", "k1", "--ttl", "soon"], "not a duration"),
        (["--key-id", "k1", "--role", "root"], "root"),
    ],
)
def test_mint_errors_are_messages(tmp_path: Path, extra: list[str], message: str) -> None:
    run(keys_group, "generate", "--keys-dir", str(tmp_path), "--key-id", "k1")
    args = ["mint", "--keys-dir", str(tmp_path), "--tenant", "acme", "--subject", "alice", *extra]
    code, out = run(token_group, *args)
    assert code != 0 and message in out and "Traceback" not in out


def test_generate_twice_is_an_error(tmp_path: Path) -> None:
    run(keys_group, "generate", "--keys-dir", str(tmp_path), "--key-id", "k1")
    code, out = run(keys_group, "generate", "--keys-dir", str(tmp_path), "--key-id", "k1")
    assert code == 1 and "exists" in out


def test_mint_json_names_the_token_for_revocation(tmp_path: Path) -> None:
    run(keys_group, "generate", "--keys-dir", str(tmp_path), "--key-id", "k1")
    code, out = run(token_group, "mint", "--keys-dir", str(tmp_path), "--key-id", "k1", "--tenant", "acme",
                    "--subject", "alice", "--output", "json")  # fmt: skip
    document = json.loads(out)
    claims = Verifier(load_public_keys(tmp_path)).verify(document["token"], time.time())
    assert code == 0 and document["token_id"] == claims.token_id and len(claims.token_id) == 32


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "exactly one of --token-file or --tenant"),
        (["--tenant", "acme", "--token-file", "/x"], "exactly one of"),
        (["--token-file", "/nonexistent/token"], "--token-file /nonexistent/token"),
        (["--tenant", "Not Valid"], "tenant"),
    ],
)
def test_revoke_refuses_bad_input_before_connecting(extra: list[str], message: str) -> None:
    # 127.0.0.1:9 would fail to connect: each of these is refused before any connection is tried.
    code, out = run(token_group, "revoke", "--cassandra", "127.0.0.1:9", "--local-dc", "x", *extra)
    assert code != 0 and message in out


def test_revoke_refuses_a_token_without_an_id(tmp_path: Path) -> None:
    import jwt

    token = tmp_path / "t"
    token.write_text(jwt.encode({"exp": 5}, "k" * 32, algorithm="HS256"))
    code, out = run(
        token_group, "revoke", "--cassandra", "127.0.0.1:9", "--local-dc", "x", "--token-file", str(token)
    )
    assert code != 0 and "revoke its tenant's tokens instead" in out
