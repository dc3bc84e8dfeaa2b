"""The config drive: a small ISO9660 image (label `config-2`) that carries an instance's user data and
metadata to the guest at first boot, in the OpenStack layout cloud-init already reads
(`openstack/latest/meta_data.json`, `openstack/latest/user_data`, and `network_data.json` when the
instance has NICs).

No network metadata service is needed: the ISO is attached as a cdrom. `meta_data` is pure; writing the
ISO (pycdlib, pure Python) is the only I/O.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pycdlib

from cell.compute.domain_spec import canonical_uuid
from fedlib.errors import InvalidArgument
from fedlib.ids import parse_instance_id
from fedlib.limits import MAX_USER_DATA
from fedlib.names import check_id, check_tenant

__all__ = [
    "MAX_USER_DATA_BYTES",
    "VOLUME_LABEL",
    "ConfigDriveSpec",
    "build_config_drive",
    "default_hostname",
    "meta_data",
    "read_config_drive",
    "volume_label",
]

VOLUME_LABEL = "config-2"  # what cloud-init's ConfigDrive source looks for
MAX_USER_DATA_BYTES = MAX_USER_DATA
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# (ISO9660 level-3 name, Rock Ridge/Joliet name): plain ISO9660 allows only upper case, so guests read
# the real lower-case names from the Rock Ridge (Linux) or Joliet (others) records.
_LATEST = "/openstack/latest"
_DIRS = (("/OPENSTACK", "openstack", "/openstack"), ("/OPENSTACK/LATEST", "latest", _LATEST))
_META = ("/OPENSTACK/LATEST/META_DATA.JSON;1", "meta_data.json")
_USER = ("/OPENSTACK/LATEST/USER_DATA.;1", "user_data")
_NETWORK = ("/OPENSTACK/LATEST/NETWORK_DATA.JSON;1", "network_data.json")


@dataclass(frozen=True)
class ConfigDriveSpec:
    instance_id: str
    uuid: str
    tenant: str
    cell: str
    user_data: bytes = b""
    hostname: str = ""  # empty: derived from the instance id
    network_data: Mapping[str, object] | None = None  # cell.compute.network_data; None: no NIC

    def __post_init__(self) -> None:
        parse_instance_id(self.instance_id, "instance_id")
        object.__setattr__(self, "uuid", canonical_uuid(self.uuid))
        check_tenant(self.tenant, "tenant")
        check_id(self.cell, "cell")
        if not isinstance(self.user_data, bytes):
            raise InvalidArgument("user_data must be bytes", field="user_data")
        if len(self.user_data) > MAX_USER_DATA_BYTES:
            raise InvalidArgument(
                f"user_data is {len(self.user_data)} bytes; the limit is {MAX_USER_DATA_BYTES}",
                field="user_data",
            )
        if not self.hostname:
            object.__setattr__(self, "hostname", default_hostname(self.instance_id))
        if not _HOSTNAME.match(self.hostname):
            raise InvalidArgument(f"hostname {self.hostname!r} is not a DNS label", field="hostname")


def default_hostname(instance_id: str) -> str:
    """A DNS label from an instance id: the id's dot is not allowed in a label, and the ULID is unique."""
    return "i-" + parse_instance_id(instance_id, "instance_id").ulid


def meta_data(spec: ConfigDriveSpec) -> dict[str, object]:
    """`meta_data.json`, with the keys cloud-init's OpenStack reader uses."""
    return {
        "uuid": spec.uuid,
        "name": spec.instance_id,
        "hostname": spec.hostname,
        "project_id": spec.tenant,
        "availability_zone": spec.cell,
        "launch_index": 0,
        "meta": {"cellfed_instance_id": spec.instance_id, "cellfed_cell": spec.cell},
    }


def build_config_drive(spec: ConfigDriveSpec, path: Path) -> Path:
    """Write the ISO to `path` atomically (a guest never sees half an image); returns `path`."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=VOLUME_LABEL, rock_ridge="1.09", joliet=3)
    for iso_dir, name, joliet in _DIRS:
        iso.add_directory(iso_dir, rr_name=name, joliet_path=joliet)
    files = [(_META, json.dumps(meta_data(spec), sort_keys=True).encode())]
    if spec.user_data:  # like Nova: no user data, no file
        files.append((_USER, spec.user_data))
    if spec.network_data is not None:
        files.append((_NETWORK, json.dumps(spec.network_data, sort_keys=True).encode()))
    for (iso_path, name), data in files:
        iso.add_fp(io.BytesIO(data), len(data), iso_path, rr_name=name, joliet_path=f"{_LATEST}/{name}")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        iso.write(str(tmp))
        os.replace(tmp, path)
    finally:
        iso.close()
        tmp.unlink(missing_ok=True)
    return path


def read_config_drive(path: Path) -> dict[str, bytes]:
    """The files of a config drive by their Rock Ridge path (for tests and for operators debugging)."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        out = {}
        for _, name in (_META, _USER, _NETWORK):
            rr_path = f"{_LATEST}/{name}"
            buf = io.BytesIO()
            try:
                iso.get_file_from_iso_fp(buf, rr_path=rr_path)
            except pycdlib.pycdlibexception.PyCdlibInvalidInput:
                continue  # user_data and network_data are optional
            out[rr_path.lstrip("/")] = buf.getvalue()
        return out
    finally:
        iso.close()


def volume_label(path: Path) -> str:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        return bytes(iso.pvd.volume_identifier).decode().rstrip()
    finally:
        iso.close()
