"""A deliberately tiny kustomize: renders k8s/ overlays offline, with nothing but PyYAML.

Why: kustomize itself is neither in Debian nor on PyPI (the PyPI package named `kustomize` is an
unrelated generator of kustomization files), and CI may only install from those registries. Where a real
`kubectl kustomize` is installed, test_k8s_render.py checks that both produce the same objects.

Supported, exactly what k8s/ uses, and nothing else (anything else in a kustomization.yaml is an error,
never silently ignored):
- `resources`: YAML files (several documents each) and directories holding a kustomization.yaml, which
  are rendered first with their own kustomization.
- `namespace`: set on every namespaced object (overriding what it had).
- `labels`: `pairs` added to every object's metadata.labels; with `includeTemplates: true` also to the
  pod templates of workloads and StatefulSet volumeClaimTemplates. `includeSelectors: true` is not
  supported: selectors are written out in the manifests.
- `configMapGenerator`: `literals` (KEY=VALUE) and `files` (path or key=path), behavior create only;
  requires `generatorOptions: {disableNameSuffixHash: true}` (no hash suffixes, so no reference rewriting).
- `images`: `newName` / `newTag` for containers and init containers whose image name matches `name`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

__all__ = ["KustomizeError", "render"]

Obj = dict[str, Any]

_TOP_KEYS = {"apiVersion", "kind", "resources", "namespace", "labels", "configMapGenerator",
             "generatorOptions", "images"}  # fmt: skip
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                   "PersistentVolume", "StorageClass", "PriorityClass"}  # fmt: skip
_WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"}


class KustomizeError(Exception):
    """The kustomization uses something this renderer does not implement, or is malformed."""


def render(directory: Path) -> list[Obj]:
    """Every object the kustomization in `directory` produces, sorted by (kind, namespace, name)."""
    objects = _build(Path(directory).resolve())
    return sorted(objects, key=_ident)


def _build(directory: Path) -> list[Obj]:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = set(spec) - _TOP_KEYS
    if unknown:
        raise KustomizeError(f"{path}: unsupported kustomization fields {sorted(unknown)}")
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        objects.extend(_build(target) if target.is_dir() else _load(target))
    objects.extend(_generate(directory, spec))
    _check_unique(objects, path)
    if "namespace" in spec:
        _set_namespace(objects, spec["namespace"])
    for entry in spec.get("labels", []):
        _add_labels(objects, entry, path)
    for entry in spec.get("images", []):
        _set_image(objects, entry, path)
    return objects


def _load(path: Path) -> Iterator[Obj]:
    if not path.is_file():
        raise KustomizeError(f"resource {path} does not exist")
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is not None:
            yield doc


def _generate(directory: Path, spec: Obj) -> list[Obj]:
    generators = spec.get("configMapGenerator", [])
    options = spec.get("generatorOptions", {})
    if set(options) - {"disableNameSuffixHash"}:
        raise KustomizeError(f"{directory}: unsupported generatorOptions {sorted(options)}")
    if generators and options.get("disableNameSuffixHash") is not True:
        raise KustomizeError(f"{directory}: generators need generatorOptions.disableNameSuffixHash: true")
    out = []
    for gen in generators:
        if set(gen) - {"name", "literals", "files"}:
            raise KustomizeError(f"{directory}: unsupported configMapGenerator fields {sorted(gen)}")
        data: dict[str, str] = {}
        for literal in gen.get("literals", []):
            key, sep, value = literal.partition("=")
            if not sep:
                raise KustomizeError(f"{directory}: literal {literal!r} is not KEY=VALUE")
            data[key] = value
        for item in gen.get("files", []):
            key, sep, rel = item.partition("=")
            rel = rel if sep else key
            data[key if sep else Path(rel).name] = (directory / rel).read_text()
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    return out


def _set_namespace(objects: list[Obj], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] not in _CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace


def _add_labels(objects: list[Obj], entry: Obj, where: Path) -> None:
    if set(entry) - {"pairs", "includeTemplates", "includeSelectors"} or entry.get("includeSelectors"):
        raise KustomizeError(f"{where}: labels supports pairs and includeTemplates only, got {entry}")
    pairs = entry["pairs"]
    for obj in objects:
        obj["metadata"].setdefault("labels", {}).update(pairs)
        if entry.get("includeTemplates") and obj["kind"] in _WORKLOADS:
            spec = obj["spec"]
            spec["template"].setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            for claim in spec.get("volumeClaimTemplates", []):
                claim.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _set_image(objects: list[Obj], entry: Obj, where: Path) -> None:
    if set(entry) - {"name", "newName", "newTag"}:
        raise KustomizeError(f"{where}: images supports name, newName and newTag only, got {entry}")
    for container in _containers(objects):
        name, tag = _split_image(container["image"])
        if name != entry["name"]:
            continue
        name = entry.get("newName", name)
        tag = str(entry["newTag"]) if "newTag" in entry else tag
        container["image"] = f"{name}:{tag}" if tag else name


def _containers(objects: list[Obj]) -> Iterator[Obj]:
    for obj in objects:
        if obj["kind"] in _WORKLOADS:
            pod = obj["spec"]["template"]["spec"]
            yield from pod.get("initContainers", [])
            yield from pod.get("containers", [])


def _split_image(image: str) -> tuple[str, str]:
    if "@" in image:
        raise KustomizeError(f"image digests are not supported: {image}")
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:  # no tag, or the colon belonged to a registry port
        return image, ""
    return name, tag


def _ident(obj: Obj) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def _check_unique(objects: list[Obj], where: Path) -> None:
    seen: set[tuple[str, str, str]] = set()
    for obj in objects:
        ident = _ident(obj)
        if ident in seen:
            raise KustomizeError(f"{where}: {ident} is defined twice")
        seen.add(ident)
