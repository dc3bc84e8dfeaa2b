"""Config drive: an ISO labelled config-2 whose OpenStack-layout files read back intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cell.compute.config_drive import (
    MAX_USER_DATA_BYTES,
    VOLUME_LABEL,
    ConfigDriveSpec,
    build_config_drive,
    meta_data,
    read_config_drive,
    volume_label,
)
from fedlib.errors import InvalidArgument
from fedlib.ids import new_instance_id

IID = str(new_instance_id("cell-a", 1_700_000_000_000, 7))
UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def drive(user_data: bytes = b"#!/bin/sh\necho hi\n", **kw: str) -> ConfigDriveSpec:
    return ConfigDriveSpec(IID, UUID, "tenant-1", "cell-a", user_data, **kw)


def test_iso_reads_back_with_label_metadata_and_user_data(tmp_path: Path) -> None:
    path = build_config_drive(drive(), tmp_path / "config.iso")
    assert volume_label(path) == VOLUME_LABEL == "config-2"
    files = read_config_drive(path)
    assert files["openstack/latest/user_data"] == b"#!/bin/sh\necho hi\n"
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta == meta_data(drive())
    assert (meta["uuid"], meta["name"], meta["project_id"], meta["availability_zone"]) == (
        UUID,
        IID,
        "tenant-1",
        "cell-a",
    )
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_no_user_data_means_no_user_data_file(tmp_path: Path) -> None:
    files = read_config_drive(build_config_drive(drive(b""), tmp_path / "c.iso"))
    assert set(files) == {"openstack/latest/meta_data.json"}


def test_binary_user_data_at_the_limit_is_kept_exactly(tmp_path: Path) -> None:
    data = bytes(range(256)) * (MAX_USER_DATA_BYTES // 256)
    files = read_config_drive(build_config_drive(drive(data), tmp_path / "c.iso"))
    assert files["openstack/latest/user_data"] == data


def test_rebuild_replaces_the_previous_image(tmp_path: Path) -> None:
    build_config_drive(drive(b"one"), tmp_path / "c.iso")
    build_config_drive(drive(b"two"), tmp_path / "c.iso")
    assert read_config_drive(tmp_path / "c.iso")["openstack/latest/user_data"] == b"two"


def test_hostname_defaults_to_a_dns_label_from_the_id() -> None:
    hostname = drive().hostname
    assert hostname.startswith("i-") and "." not in hostname and len(hostname) <= 63
    assert drive(hostname="web-1").hostname == "web-1"


def test_oversize_user_data_is_rejected() -> None:
    with pytest.raises(InvalidArgument) as err:
        drive(b"x" * (MAX_USER_DATA_BYTES + 1))
    assert err.value.field == "user_data"


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("user_data", {"user_data": "text, not bytes"}),
        ("instance_id", {"instance_id": "nope"}),
        ("uuid", {"uuid": "nope"}),
        ("tenant", {"tenant": "Not A Tenant"}),
        ("cell", {"cell": "-"}),
        ("hostname", {"hostname": "bad_host"}),
    ],
)
def test_bad_inputs_name_the_field(field: str, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = dict(instance_id=IID, uuid=UUID, tenant="t", cell="cell-a", user_data=b"")
    with pytest.raises(InvalidArgument) as err:
        ConfigDriveSpec(**{**args, **kwargs})  # type: ignore[arg-type]
    assert err.value.field == field
