"""Libvirt domain XML for a cellfed instance, and the cellfed metadata read back from it (pure).

The domain carries its own identity in `<metadata>` (instance id, tenant, flavor, spec version, owning
cell), so an agent that restarts recovers what it runs from libvirt alone, without its database.
No I/O here: the agent's libvirt adapter defines what this returns.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from cell.compute.domain_spec import DiskImage, DomainSpec, InstanceMetadata, Isolation, KernelBoot
from fedlib.errors import InvalidArgument

__all__ = [
    "METADATA_KEY",
    "METADATA_NS",
    "DiskImage",
    "DomainSpec",
    "InstanceMetadata",
    "Isolation",
    "KernelBoot",
    "build_domain_xml",
    "domain_name",
    "kernel_cmdline",
    "parse_metadata",
]

METADATA_NS = "https://cellfed.dev/xmlns/instance/1"
METADATA_KEY = "cellfed"  # the prefix libvirt's setMetadata() wants next to the namespace URI
_DOMAIN_PREFIX = "cellfed-"
# (element name, InstanceMetadata attribute): the on-disk vocabulary is frozen by the namespace version.
_META_FIELDS = (
    ("id", "instance_id"),
    ("tenant", "tenant"),
    ("flavor", "flavor"),
    ("spec-version", "spec_version"),
    ("cell", "cell"),
)
# Added later, so optional on read: a domain defined before generations is the first generation.
_GENERATION = "generation"
# Element names equal the Isolation attribute names on purpose.
_IOTUNE = (
    "total_iops_sec",
    "read_iops_sec",
    "write_iops_sec",
    "total_bytes_sec",
    "read_bytes_sec",
    "write_bytes_sec",
)


def domain_name(instance_id: str) -> str:
    """The libvirt name of an instance: prefixed so cellfed never touches domains it did not create."""
    return _DOMAIN_PREFIX + instance_id


def build_domain_xml(spec: DomainSpec) -> str:
    """The full `<domain>` document for `spec` (already validated by DomainSpec's constructor)."""
    dom = ET.Element("domain", type=spec.virt_type)
    _text(dom, "name", domain_name(spec.metadata.instance_id))
    _text(dom, "uuid", spec.uuid)
    dom.append(_metadata(spec.metadata))
    _text(dom, "memory", str(spec.memory_mib), unit="MiB")
    _text(dom, "vcpu", str(spec.vcpus))
    _tuning(dom, spec.isolation)
    dom.append(_os(spec))
    ET.SubElement(ET.SubElement(dom, "features"), "acpi")  # without it QEMU ignores ACPI shutdown
    ET.SubElement(dom, "clock", offset="utc")
    _text(dom, "on_poweroff", "destroy")
    _text(dom, "on_reboot", "restart")
    _text(dom, "on_crash", "destroy")
    dom.append(_devices(spec))
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")


def parse_metadata(xml_text: str) -> InstanceMetadata:
    """Read cellfed metadata from a whole domain XML or from the element `virDomainGetMetadata` returns.

    libvirt hands the element back without its prefix or namespace, so names are matched by local name
    (inside a whole domain, only under `<metadata>` and in our namespace).
    """
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise InvalidArgument(f"metadata is not XML: {exc}", field="metadata") from None
    elem = root if _local(root.tag) == "instance" else root.find(f"metadata/{{{METADATA_NS}}}instance")
    if elem is None:
        raise InvalidArgument("no cellfed instance metadata in the domain", field="metadata")
    values = {_local(child.tag): (child.text or "").strip() for child in elem}
    missing = [name for name, _ in _META_FIELDS if name not in values]
    if missing:
        raise InvalidArgument(f"cellfed metadata lacks {', '.join(missing)}", field="metadata")
    try:
        version = int(values["spec-version"])
        generation = int(values.get(_GENERATION, "1"))
    except ValueError:
        raise InvalidArgument("cellfed metadata spec-version or generation is not an integer",
                              field="metadata") from None  # fmt: skip
    return InstanceMetadata(  # which validates the values themselves
        instance_id=values["id"],
        tenant=values["tenant"],
        flavor=values["flavor"],
        spec_version=version,
        cell=values["cell"],
        generation=generation,
    )


def _metadata(meta: InstanceMetadata) -> ET.Element:
    # Literal prefixed tags keep the output readable without ET.register_namespace (a process-wide
    # registry other code could also write to).
    outer = ET.Element("metadata")
    inst = ET.SubElement(outer, f"{METADATA_KEY}:instance", {f"xmlns:{METADATA_KEY}": METADATA_NS})
    for name, attr in _META_FIELDS:
        _text(inst, f"{METADATA_KEY}:{name}", str(getattr(meta, attr)))
    _text(inst, f"{METADATA_KEY}:{_GENERATION}", str(meta.generation))
    return outer


def _tuning(dom: ET.Element, iso: Isolation) -> None:
    cputune = ET.Element("cputune")
    for name, value in (
        ("shares", iso.cpu_shares),
        ("period", iso.cpu_period_us),
        ("quota", iso.cpu_quota_us),
    ):
        if value is not None:
            _text(cputune, name, str(value))
    if len(cputune):
        dom.append(cputune)
    if iso.memory_hard_limit_mib is not None:
        _text(ET.SubElement(dom, "memtune"), "hard_limit", str(iso.memory_hard_limit_mib), unit="MiB")


def _os(spec: DomainSpec) -> ET.Element:
    os_el = ET.Element("os")
    # The test driver knows no machine types; QEMU gets the plain i440fx PC (IDE cdrom = /dev/sr0).
    type_attrs = {"arch": "x86_64"} if spec.virt_type == "test" else {"arch": "x86_64", "machine": "pc"}
    _text(os_el, "type", "hvm", **type_attrs)
    if isinstance(spec.image, KernelBoot):
        _text(os_el, "kernel", spec.image.kernel)
        _text(os_el, "initrd", spec.image.initrd)
        _text(os_el, "cmdline", kernel_cmdline(spec.metadata.instance_id, spec.image.extra_cmdline))
    else:
        ET.SubElement(os_el, "boot", dev="hd")
    return os_el


def kernel_cmdline(instance_id: str, extra: str = "") -> str:
    """The guest learns its instance id from `cellfed.id=`, before any config drive is read."""
    base = f"console=ttyS0 cellfed.id={instance_id}"
    return f"{base} {extra}" if extra else base


def _devices(spec: DomainSpec) -> ET.Element:
    devices = ET.Element("devices")
    if isinstance(spec.image, DiskImage):
        disk = _disk(devices, "disk", spec.image.path, spec.image.format, ("vda", "virtio"))
        _iotune(disk, spec.isolation)
    if spec.config_drive is not None:
        cdrom = _disk(devices, "cdrom", spec.config_drive, "raw", ("hdc", "ide"))
        ET.SubElement(cdrom, "readonly")
    for nic in spec.nics:
        interface = ET.SubElement(devices, "interface", type="bridge")
        ET.SubElement(interface, "mac", address=nic.mac)
        ET.SubElement(interface, "source", bridge=nic.bridge)
        ET.SubElement(interface, "model", type="virtio")
    if spec.serial_log is not None:
        serial = ET.SubElement(devices, "serial", type="file")
        ET.SubElement(serial, "source", path=spec.serial_log)
        ET.SubElement(serial, "target", port="0")
    if spec.virt_type == "qemu":
        ET.SubElement(devices, "memballoon", model="none")  # memory is a hard reservation, never ballooned
    return devices


def _disk(parent: ET.Element, device: str, path: str, fmt: str, target: tuple[str, str]) -> ET.Element:
    disk = ET.SubElement(parent, "disk", type="file", device=device)
    ET.SubElement(disk, "driver", name="qemu", type=fmt)
    ET.SubElement(disk, "source", file=path)
    ET.SubElement(disk, "target", dev=target[0], bus=target[1])
    return disk


def _iotune(disk: ET.Element, iso: Isolation) -> None:
    iotune = ET.Element("iotune")
    for name in _IOTUNE:
        value = getattr(iso, name)
        if value is not None:
            _text(iotune, name, str(value))
    if len(iotune):
        disk.append(iotune)


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    elem = ET.SubElement(parent, tag, attrs)
    elem.text = text
    return elem


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]
