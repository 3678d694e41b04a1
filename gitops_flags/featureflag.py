"""OpenFeature Operator `FeatureFlag` resources from the store's flagd documents (pure).

One resource per environment (`apiVersion: core.openfeature.dev/v1beta1`, `kind: FeatureFlag`); its
`spec.flagSpec` is the environment's flagd document as `flagd.compile_environment` wrote it, less
`$schema` (the CRD has no such field, so the API server would prune it and Argo CD or Flux would show a
difference forever). Where each resource goes and what it is called comes from the policy's
`store.manifests` section (`model.ManifestsConfig`); `placements` resolves it per environment.

Each resource carries a seal annotation over everything else in it: an HMAC keyed with the store's seal
key, or a plain sha256 without one. It tells a manifest gitops-flags wrote earlier (a run that could not
publish) from one edited by hand (drift). Only the keyed seal proves it: anyone can recompute a sha256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .loader import Limits, load_bytes
from .model import FeatureFlagResource, ManifestsConfig
from .problems import GitopsFlagsError, ProblemError

API_VERSION = "core.openfeature.dev/v1beta1"
KIND = "FeatureFlag"
MANAGED_BY = "app.kubernetes.io/managed-by"
ENVIRONMENT_LABEL = "gitops-flags/environment"
COMMIT_ANNOTATION = "gitops-flags/commit"
SEAL_ANNOTATION = "gitops-flags/seal"
ENVIRONMENT = "{environment}"
HEADER = (
    "# Written by gitops-flags from the approved flag store. Do not edit: change the flag files in a pull\n"
    "# request. An edit here is reported as drift by the next `gitops-flags apply` and reverted.\n"
)
_SEAL_DOMAIN = b"gitops-flags FeatureFlag seal v1\0"
# A manifest of 10,000 flags is a few MB; hand-edited ones are bounded all the same (size, nodes, depth).
READ_LIMITS = Limits(max_bytes=32 * 1024 * 1024, max_depth=64, max_nodes=5_000_000)

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(|[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_PATH_PART = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")

Verdict = Literal["current", "missing", "stale", "drift"]


class ManifestError(GitopsFlagsError):
    """The `store.manifests` section cannot be applied to these environments."""


@dataclass(frozen=True)
class Placement:
    """Where one environment's resource goes, and its name. `repository` None: this repository."""

    environment: str
    name: str
    namespace: str | None
    labels: Mapping[str, str]
    path: str
    repository: str | None
    branch: str

    @property
    def target(self) -> tuple[str | None, str]:
        return (self.repository, self.branch)


def placements(config: ManifestsConfig, environments: Sequence[str]) -> list[Placement]:
    """Every environment's placement, checked: names Kubernetes accepts once `{environment}` is filled
    in, and no two environments writing the same file."""
    unknown = sorted(set(config.environments) - set(environments))
    if unknown:
        raise ManifestError(
            f"store.manifests.environments names {', '.join(map(repr, unknown))}, which the policy's "
            f"environments ({', '.join(environments)}) do not declare"
        )
    out: list[Placement] = []
    seen: dict[tuple[str | None, str, str], str] = {}
    for environment in environments:
        own = config.environments.get(environment, FeatureFlagResource())
        placement = Placement(
            environment=environment,
            name=_fill(own.name or config.name, environment),
            namespace=_fill(own.namespace or config.namespace, environment) or None,
            labels={k: _fill(v, environment) for k, v in {**config.labels, **own.labels}.items()},
            path=_fill(own.path or config.path, environment),
            repository=own.repository or config.repository,
            branch=own.branch or config.branch,
        )
        _check(placement)
        where = (placement.repository, placement.branch, placement.path)
        if where in seen:
            raise ManifestError(
                f"store.manifests: environments {seen[where]!r} and {environment!r} would both be written to "
                f"{placement.path}; give one of them its own `path`"
            )
        seen[where] = environment
        out.append(placement)
    return out


def _fill(text: str | None, environment: str) -> str:
    return (text or "").replace(ENVIRONMENT, environment)


def _check(p: Placement) -> None:
    what = f"store.manifests for environment {p.environment!r}"
    if len(p.name) > 253 or not _DNS_SUBDOMAIN.match(p.name):
        raise ManifestError(
            f"{what}: the resource name {p.name!r} is not a Kubernetes name (lower-case letters, digits, "
            f"'-' and '.'); set `name` under store.manifests.environments.{p.environment}"
        )
    if p.namespace is not None and (len(p.namespace) > 63 or not _DNS_LABEL.match(p.namespace)):
        raise ManifestError(f"{what}: the namespace {p.namespace!r} is not a Kubernetes namespace name")
    for key, value in p.labels.items():
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise ManifestError(
                f"{what}: the value {value!r} of label {key!r} is not a Kubernetes label value"
            )
    parts = p.path.split("/")
    if not all(_PATH_PART.match(part) for part in parts) or not p.path.endswith((".yaml", ".yml")):
        raise ManifestError(f"{what}: the path {p.path!r} is not a relative path to a .yaml file")


# --- the resource --------------------------------------------------------------------------------------


def resource(
    document: Mapping[str, Any], placement: Placement, *, flag_metadata: bool = True, key: bytes | None = None
) -> dict[str, Any]:
    """The `FeatureFlag` resource serving one environment's flagd document, sealed."""
    flags = document.get("flags", {})
    if flag_metadata:
        spec: dict[str, Any] = {"flags": flags}
        if document.get("metadata"):
            spec["metadata"] = document["metadata"]
    else:  # operators before v0.9.0 prune `metadata`: leave it out rather than fight the API server
        spec = {"flags": {k: {f: v for f, v in flag.items() if f != "metadata"} for k, flag in flags.items()}}
    metadata: dict[str, Any] = {"name": placement.name}
    if placement.namespace:
        metadata["namespace"] = placement.namespace
    metadata["labels"] = {
        **placement.labels,
        MANAGED_BY: "gitops-flags",
        ENVIRONMENT_LABEL: _label_safe(placement.environment),
    }
    commit = document.get("metadata", {}).get("gitopsCommit")
    metadata["annotations"] = {COMMIT_ANNOTATION: str(commit)} if commit else {}
    out: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata,
                           "spec": {"flagSpec": spec}}
    metadata["annotations"][SEAL_ANNOTATION] = seal(out, key)
    return out


def _label_safe(value: str) -> str:
    """An environment name as a label value (environment names allow '_', which label values also do)."""
    return (
        value
        if _LABEL_VALUE.match(value) and len(value) <= 63
        else hashlib.sha256(value.encode()).hexdigest()[:16]
    )


def seal(resource_: Mapping[str, Any], key: bytes | None) -> str:
    """`hmac-sha256:<hex>` with the store's seal key, else `sha256:<hex>`, over the resource without
    its seal annotation (canonical JSON)."""
    body = _sealed_body(resource_)
    if key is None:
        return "sha256:" + hashlib.sha256(body).hexdigest()
    return "hmac-sha256:" + hmac.new(key, _SEAL_DOMAIN + body, hashlib.sha256).hexdigest()


def _sealed_body(resource_: Mapping[str, Any]) -> bytes:
    data = json.loads(json.dumps(resource_))  # a deep copy of plain JSON values
    metadata = data.get("metadata") if isinstance(data, dict) else None
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if isinstance(annotations, dict):
        annotations.pop(SEAL_ANNOTATION, None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def dumps(resource_: Mapping[str, Any]) -> bytes:
    """The manifest: a header saying not to edit, then the resource as JSON, which is YAML (every YAML
    parser Kubernetes, Argo CD, Flux and kustomize use reads it; every string is quoted, so `on`, `off`
    or `yes` stay strings). One flag per line, so a config repository's diff names the flags a change
    touched; keys sorted, so the same resource always gives the same bytes and a run that changes
    nothing writes nothing. Not block YAML: PyYAML takes tens of seconds for 10,000 flags, and `json`
    with `indent` falls back to its pure-Python encoder."""
    spec = resource_["spec"]["flagSpec"]
    flags = [f"      {_compact(k)}: {_compact(v)}" for k, v in sorted(spec.get("flags", {}).items())]
    inner = ["    \"flags\": {}" if not flags else "    \"flags\": {\n" + ",\n".join(flags) + "\n    }"]
    inner += [f"    {_compact(k)}: {_compact(v)}" for k, v in sorted(spec.items()) if k != "flags"]
    head = [f"  {_compact(k)}: {_compact(resource_[k])}," for k in ("apiVersion", "kind", "metadata")]
    body = ["{", *head, "  \"spec\": {\"flagSpec\": {", ",\n".join(inner), "  }}", "}"]
    return (HEADER + "\n".join(body) + "\n").encode()


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def loads(raw: bytes, where: str) -> Any:
    """A manifest read back. As written, JSON after comment lines; edited by hand, it may be any YAML
    (bounded: anyone who can push there may have written it)."""
    body = b"\n".join(line for line in raw.split(b"\n") if not line.lstrip().startswith(b"#"))
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        pass
    try:
        return load_bytes(raw, where, READ_LIMITS).data
    except ProblemError as exc:
        raise ManifestError(f"{where}: not a YAML mapping ({exc})") from None


def verdict(
    raw: bytes | None, expected: Mapping[str, Any], key: bytes | None, where: str, data: bytes | None = None
) -> Verdict:
    """How the manifest in the target compares with the one the store's documents give (`data`: its
    bytes, when already rendered): current (the same), missing, stale (an earlier manifest gitops-flags
    sealed: a publish was missed) or drift (changed by something else)."""
    if raw is None:
        return "missing"
    data = dumps(expected) if data is None else data
    if raw == data:
        return "current"
    if len(raw) > 4 * len(data) + 1024 * 1024:
        return "drift"  # far larger than anything gitops-flags wrote for it: not worth parsing
    try:
        actual = loads(raw, where)
    except ManifestError:
        return "drift"
    if isinstance(actual, dict) and _sealed_body(actual) == _sealed_body(expected):
        return "current"  # reformatted, or sealed with another key: the same resource
    claimed = _at(actual, "metadata", "annotations").get(SEAL_ANNOTATION)
    if isinstance(claimed, str) and hmac.compare_digest(claimed, seal(actual, key)):
        return "stale"
    return "drift"


def differences(raw: bytes | None, expected: Mapping[str, Any], where: str) -> str:
    """What differs, in words (for the drift report): flags edited, added or removed, or the rest."""
    if raw is None:
        return "missing"
    try:
        actual = loads(raw, where)
    except ManifestError as exc:
        return str(exc)
    want = _at(expected, "spec", "flagSpec", "flags")
    have = _at(actual, "spec", "flagSpec", "flags")
    parts = []
    edited = sorted(k for k in set(want) & set(have) if json.loads(json.dumps(want[k])) != have[k])
    named = [
        (edited, "edited"),
        (sorted(set(want) - set(have)), "removed"),
        (sorted(set(have) - set(want)), "added"),
    ]
    parts += [f"{_some(keys)} {what}" for keys, what in named if keys]
    return "; ".join(parts) or "resource fields other than the flags changed"


def _some(keys: Sequence[str], shown: int = 10) -> str:
    """Keys for a message, at most `shown` of them (a hand-edited manifest may add any number), each cut
    to 64 characters."""
    named = ", ".join(str(k)[:64] for k in keys[:shown])
    return named + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def _at(value: Any, *keys: str) -> dict[str, Any]:
    """The mapping at `keys`, or an empty one where the path does not lead to a mapping."""
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}
