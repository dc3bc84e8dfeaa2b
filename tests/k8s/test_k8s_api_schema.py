"""Every rendered object is valid against the Kubernetes API schemas, offline (kubernetes-validate),
strictly (unknown fields are errors), for the oldest Kubernetes these manifests support and the newest
the validator bundles."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.k8s.objects import SITES, Obj, ident, rendered

# Native gRPC probes are GA since 1.27; 1.28 is the oldest release we claim to support.
OLDEST = "1.28.0"
VERSIONS = sorted({OLDEST, kubernetes_validate.latest_version()})

CASES = [(site, obj) for site in SITES for obj in rendered(site)]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("site, obj", CASES, ids=[f"{s}:{ident(o)}" for s, o in CASES])
def test_valid_against_api_schema(site: str, obj: Obj, version: str) -> None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{site} {ident(obj)} at {where}: {exc.message} (Kubernetes {exc.version})")
