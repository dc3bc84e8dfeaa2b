"""The offline renderer (tests/k8s/render.py): its few features behave as kustomize's do, anything else
is refused, and where a real `kubectl kustomize` is installed both render every overlay identically."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.k8s.objects import K8S, SITES, ident, rendered
from tests.k8s.render import KustomizeError, render

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers: [{name: init, image: "registry.local:5000/tool"}]
      containers: [{name: web, image: "web:1.0"}]
"""


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_every_site_is_an_overlay_of_the_base() -> None:
    assert SITES == ["fra1", "nyc1", "par1"]
    for site in SITES:
        spec = yaml.safe_load((K8S / "sites" / site / "kustomization.yaml").read_text())
        assert "../../base" in spec["resources"]


def test_namespace_labels_images_and_generators(tmp_path: Path) -> None:
    _write(tmp_path, {
        "base/kustomization.yaml": "resources: [web.yaml]\n",
        "base/web.yaml": DEPLOYMENT,
        "site/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: s1}\n",
        "site/conf.txt": "hello\n",
        "site/kustomization.yaml": (
            "namespace: s1\nresources: [ns.yaml, ../base]\n"
            "labels: [{pairs: {site: s1}, includeTemplates: true}]\n"
            "configMapGenerator: [{name: c, literals: [A=1, B=x=y], files: [conf.txt, k=conf.txt]}]\n"
            "generatorOptions: {disableNameSuffixHash: true}\n"
            "images: [{name: web, newTag: '2.0'}, {name: 'registry.local:5000/tool', newName: tool}]\n"
        ),
    })  # fmt: skip
    objs = {ident(o): o for o in render(tmp_path / "site")}
    assert set(objs) == {"ConfigMap/s1/c", "Deployment/s1/web", "Namespace/-/s1"}
    web = objs["Deployment/s1/web"]
    assert web["metadata"]["labels"] == {"site": "s1"}
    assert web["spec"]["selector"] == {"matchLabels": {"app": "web"}}  # selectors untouched
    assert web["spec"]["template"]["metadata"]["labels"] == {"app": "web", "site": "s1"}
    pod = web["spec"]["template"]["spec"]
    assert [c["image"] for c in pod["initContainers"] + pod["containers"]] == ["tool", "web:2.0"]
    assert objs["ConfigMap/s1/c"]["data"] == {"A": "1", "B": "x=y", "conf.txt": "hello\n", "k": "hello\n"}


@pytest.mark.parametrize(
    "kustomization, message",
    [
        ("resources: [web.yaml]\nnamePrefix: x-\n", "unsupported kustomization fields"),
        ("resources: [web.yaml]\npatches: [{path: p.yaml}]\n", "unsupported kustomization fields"),
        (
            "resources: [web.yaml]\nconfigMapGenerator: [{name: c, literals: [A=1]}]\n",
            "disableNameSuffixHash",
        ),
        ("resources: [web.yaml]\nlabels: [{pairs: {a: b}, includeSelectors: true}]\n", "labels supports"),
        ("resources: [web.yaml, web.yaml]\n", "defined twice"),
        ("resources: [missing.yaml]\n", "does not exist"),
    ],
)
def test_anything_else_is_refused(tmp_path: Path, kustomization: str, message: str) -> None:
    _write(tmp_path, {"kustomization.yaml": kustomization, "web.yaml": DEPLOYMENT})
    with pytest.raises(KustomizeError, match=message):
        render(tmp_path)


def _kubectl_kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        probe = subprocess.run(["kubectl", "kustomize", "--help"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["kubectl", "kustomize"]
    return None


@pytest.mark.parametrize("site", SITES)
def test_same_objects_as_real_kustomize(site: str) -> None:
    command = _kubectl_kustomize()
    if command is None:
        pytest.skip("no kustomize or kubectl on this machine: the renderer is not cross-checked here")
    out = subprocess.run([*command, str(K8S / "sites" / site)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    theirs = {ident(o): o for o in yaml.safe_load_all(out.stdout) if o}
    ours = {ident(o): o for o in rendered(site)}
    assert sorted(ours) == sorted(theirs)
    for key, obj in ours.items():
        assert obj == theirs[key], key
