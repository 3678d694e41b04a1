"""FeatureFlag manifests for the OpenFeature Operator, judged by their real consumers.

The bundled example is applied and advanced through its rollout stages with a simulated clock; at every
stage each environment's manifest must

- validate against the operator's own CRD schema (vendored in tests/fixtures/openfeature-operator/),
  strictly: a field the API server would prune is an error, since Argo CD and Flux would report it as a
  difference forever;
- carry a `spec.flagSpec` valid against flagd's flag-definition schema (what the operator's admission
  webhook checks);
- serve, through OpenFeature's Python flagd provider in-process, exactly what the flagd file store
  serves: every flag, for every evaluation context tried, value, variant and reason alike.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import responses
import yaml
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from referencing import Registry, Resource
from test_store_seal import regenerate_manifest

from gitops_flags import cli, featureflag
from gitops_flags.featureflag import ManifestError
from gitops_flags.model import ManifestsConfig
from gitops_flags.store import ConflictError, StoreError
from gitops_flags.store.featureflags import DirectoryTarget, FeatureFlagStore
from gitops_flags.store.file import FileStore
from gitops_flags.store.state import StoreState

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
GATE = "https://status.acme.example/api/checkout"
MANIFESTS = """\
  manifests:
    namespace: flags
    labels: {app.kubernetes.io/part-of: shop}
    environments:
      production: {namespace: prod, path: apps/flags/production.yaml, repository: acme/cluster-config,
                   branch: main, labels: {tier: critical}}
      staging: {path: apps/flags/staging.yaml}
"""
PATHS = {"production": "apps/flags/production.yaml", "staging": "apps/flags/staging.yaml"}


# --- the consumers' schemas ------------------------------------------------------------------------


def crd_schema(name: str = "featureflags.crd.yaml") -> dict[str, Any]:
    crd = yaml.safe_load((FIXTURES / "openfeature-operator" / name).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def strict(schema: Any) -> Any:
    """The API server prunes fields a structural schema does not list unless it preserves unknown
    fields: make such objects refuse extra fields, so a pruned field fails validation."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_validator(name: str = "featureflags.crd.yaml") -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(strict(crd_schema(name)))


def flagd_validator() -> jsonschema.Draft7Validator:
    flags = json.loads((FIXTURES / "flagd-schema" / "flags.json").read_text())
    targeting = json.loads((FIXTURES / "flagd-schema" / "targeting.json").read_text())
    registry = Registry().with_resources([
        (flags["$id"], Resource.from_contents(flags)),
        (targeting["$id"], Resource.from_contents(targeting)),
        ("./targeting.json", Resource.from_contents(targeting)),
    ])
    return jsonschema.Draft7Validator(flags, registry=registry)


CRD = crd_validator()
FLAGD = flagd_validator()


def errors(validator: jsonschema.Draft7Validator, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


# --- evaluation through OpenFeature's flagd provider ---------------------------------------------------


COUNTRIES = ["US", "DE", "JP", "GB", "FR"]


def contexts(n: int = 240) -> list[EvaluationContext]:
    """Targeting keys with attribute mixes that hit every rule of the example (and miss them)."""
    out = []
    for i in range(n):
        out.append(EvaluationContext(targeting_key=f"user-{i:04d}", attributes={
            "email": f"u{i}@acme.com" if i % 7 == 0 else f"u{i}@example.com",
            "country": COUNTRIES[i % len(COUNTRIES)],
            "plan": "free" if i % 3 == 0 else "pro",
            "device": "desktop" if i % 2 else "mobile",
            "team": "search" if i % 11 == 0 else "other",
            "locale": "en-GB" if i % 4 == 0 else "de-DE",
            "merchant_tier": "gold" if i % 5 == 0 else "silver",
            "account_age_days": i * 3,
            "app_version": f"4.{i % 4}.{i % 10}",
            "user_id": ["u-1042", "u-2203", "u-9999"][i % 3],
        }))
    return out


CONTEXTS = contexts()


class Served:
    """A flagd provider (in-process, file mode) reading one flagd flag definition."""

    _count = 0

    def __init__(self, definition: Mapping[str, Any], path: Path) -> None:
        path.write_text(json.dumps(definition))
        Served._count += 1
        self.domain = f"manifests-{Served._count}"
        self.provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path))
        api.set_provider_and_wait(self.provider, self.domain)
        self.client: OpenFeatureClient = api.get_client(self.domain)

    def evaluate(self, key: str, kind: str, ctx: EvaluationContext) -> tuple[Any, Any, Any, Any]:
        fallback: Any = {"boolean": False, "string": "", "integer": -1, "float": -1.0, "object": {}}[kind]
        method = {"boolean": self.client.get_boolean_details, "string": self.client.get_string_details,
                  "integer": self.client.get_integer_details, "float": self.client.get_float_details,
                  "object": self.client.get_object_details}[kind]
        d = method(key, fallback, ctx)
        return d.value, d.variant, d.reason, d.error_code


def kind_of(flag: Mapping[str, Any]) -> str:
    values = list(flag["variants"].values())
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "float"
    return "object"


def same_service(document: Mapping[str, Any], flag_spec: Mapping[str, Any], tmp: Path) -> int:
    """Evaluate every flag of both definitions for every context; assert equal answers key by key.
    Returns the number of evaluations compared."""
    store = Served(document, tmp / "store.flagd.json")
    manifest = Served(flag_spec, tmp / "manifest.flagd.json")
    compared = 0
    try:
        assert sorted(flag_spec["flags"]) == sorted(document["flags"])
        for key, flag in sorted(document["flags"].items()):
            kind = kind_of(flag)
            for ctx in CONTEXTS:
                want = store.evaluate(key, kind, ctx)
                assert want[3] is None, (key, want)
                assert manifest.evaluate(key, kind, ctx) == want, (key, ctx.targeting_key)
                compared += 1
    finally:
        store.provider.shutdown()
        manifest.provider.shutdown()
    return compared


# --- the bundled example, applied and advanced ---------------------------------------------------------


class Example:
    """The repository's example (flags, policy with a `manifests:` section, CODEOWNERS) in a git repo."""

    def __init__(self, root: Path, manifests: str = MANIFESTS) -> None:
        self.repo = root / "repo"
        self.store = root / "store"
        self.out = root / "cluster-config"
        (self.repo / ".github").mkdir(parents=True)
        shutil.copytree(ROOT / "flags", self.repo / "flags")
        shutil.copy(ROOT / ".github" / "CODEOWNERS", self.repo / ".github" / "CODEOWNERS")
        policy = (ROOT / ".github" / "gitops-flags.yml").read_text()
        assert policy.count("  branch: flag-store\n") == 1
        policy = policy.replace("  branch: flag-store\n", "  branch: flag-store\n" + manifests)
        hook = "  on_unapproved: block\n"
        policy = policy.replace(hook, hook + "  webhook_env: FLAGS_HOOK\n")
        (self.repo / ".github" / "gitops-flags.yml").write_text(policy)
        self.git("init", "-q", "-b", "main")
        self.git("add", "-A")
        self.git("commit", "-qm", "Adopt gitops-flags")

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.repo, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    def apply(self, now: datetime, *extra: str) -> int:
        return cli.main(["apply", "-C", str(self.repo), "--store", f"file:{self.store}", "--init",
                         "--manifests", str(self.out), "--no-verify-approvals", "--now", now.isoformat(),
                         *extra])

    def advance(self, now: datetime) -> int:
        return cli.main(["advance", "-C", str(self.repo), "--store", f"file:{self.store}",
                         "--manifests", str(self.out), "--now", now.isoformat()])

    def manifest(self, environment: str) -> Any:
        return yaml.safe_load((self.out / PATHS[environment]).read_text())

    def documents(self) -> dict[str, Any]:
        return FileStore(self.store).read().documents


@pytest.fixture
def example(tmp_path: Path) -> Example:
    return Example(tmp_path)


@pytest.fixture
def gate() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(GATE, json={"data": {"error_rate": 0.004}})
        yield mock


def checkout_percentage(example: Example) -> int:
    metadata = example.documents()["production"]["flags"]["new_checkout_flow"]["metadata"]
    return int(metadata["gitopsRolloutPercentage"])


def test_manifests_of_the_example_at_every_rollout_stage_serve_what_the_flagd_store_serves(
    example: Example, gate: responses.RequestsMock, tmp_path: Path
) -> None:
    assert example.apply(T0) == 0
    now, seen, compared = T0, [], 0
    while True:
        seen.append(checkout_percentage(example))
        documents = example.documents()
        for environment in ("staging", "production"):
            manifest = example.manifest(environment)
            assert errors(CRD, manifest) == []
            assert errors(FLAGD, manifest["spec"]["flagSpec"]) == []
            assert manifest["apiVersion"] == "core.openfeature.dev/v1beta1"
            assert manifest["kind"] == "FeatureFlag"
            work = tmp_path / f"eval-{environment}-{len(seen)}"
            work.mkdir()
            compared += same_service(documents[environment], manifest["spec"]["flagSpec"], work)
        if seen[-1] == 100:
            break
        now += timedelta(hours=2, minutes=5)
        assert example.advance(now) == 0
    assert seen == [5, 25, 50, 75, 100]
    assert compared == 5 * len(CONTEXTS) * sum(len(d["flags"]) for d in example.documents().values())
    production = example.manifest("production")["metadata"]
    assert production["name"] == "gitops-flags-production" and production["namespace"] == "prod"
    assert production["labels"] == {"app.kubernetes.io/part-of": "shop", "tier": "critical",
                                    "app.kubernetes.io/managed-by": "gitops-flags",
                                    "gitops-flags/environment": "production"}
    assert example.manifest("staging")["metadata"]["namespace"] == "flags"
    head = example.git("rev-parse", "HEAD")
    assert production["annotations"]["gitops-flags/commit"] == head


def test_a_hand_edited_manifest_is_reported_as_drift_and_restored(
    example: Example, capsys: pytest.CaptureFixture[str]
) -> None:
    assert example.apply(T0) == 0
    path = example.out / PATHS["production"]
    approved = path.read_bytes()
    edited = example.manifest("production")
    edited["spec"]["flagSpec"]["flags"]["maintenance_banner"]["defaultVariant"] = "on"  # switch it on
    path.write_text(yaml.safe_dump(edited))
    capsys.readouterr()

    assert example.apply(T0 + timedelta(minutes=5), "--dry-run") == 1  # reported, not yet restored
    assert "maintenance_banner edited" in capsys.readouterr().err
    assert path.read_bytes() != approved

    assert example.apply(T0 + timedelta(minutes=10)) == 1
    out = capsys.readouterr()
    assert "was changed outside gitops-flags: maintenance_banner edited" in out.err
    assert path.read_bytes() == approved
    drift = [r for r in FileStore(example.store).read_audit() if r["event"] == "manifest_drift"]
    assert [r["environment"] for r in drift] == ["production"]
    assert drift[0]["key"].endswith(PATHS["production"])

    assert example.apply(T0 + timedelta(minutes=15)) == 0  # nothing left to report
    assert "was changed outside gitops-flags:" not in capsys.readouterr().err


def test_a_manifest_gitops_flags_wrote_earlier_is_caught_up_without_an_alarm(
    example: Example, gate: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    assert example.apply(T0) == 0
    path = example.out / PATHS["production"]
    at_five = path.read_bytes()
    assert example.advance(T0 + timedelta(hours=2, minutes=5)) == 0
    path.write_bytes(at_five)  # as if the run had stopped between its store write and its publish
    capsys.readouterr()
    assert example.apply(T0 + timedelta(hours=2, minutes=10)) == 0
    assert "was behind the store" in capsys.readouterr().out
    assert example.manifest("production")["spec"]["flagSpec"]["flags"]["new_checkout_flow"]["metadata"][
        "gitopsRolloutPercentage"] == 25


def test_a_deleted_manifest_is_written_again(example: Example) -> None:
    assert example.apply(T0) == 0
    (example.out / PATHS["staging"]).unlink()
    assert example.apply(T0 + timedelta(minutes=5)) == 0
    assert errors(CRD, example.manifest("staging")) == []


# --- the resource itself -------------------------------------------------------------------------------


DOCUMENT = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "metadata": {"gitopsCommit": "c0ffee", "gitopsEnvironment": "production"},
    "flags": {
        "checkout": {
            "state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off",
            "targeting": {"if": [{"ends_with": [{"var": "email"}, "@acme.com"]}, "on",
                                 {"fractional": [["on", 25], ["off", 75]]}]},
            "metadata": {"gitopsType": "boolean", "gitopsRolloutPercentage": 25},
        },
        "yes": {"state": "DISABLED", "variants": {"yes": "yes", "no": "no", "null": "~"},
                "defaultVariant": "no", "metadata": {"gitopsType": "string"}},
    },
}


def placement(**config: Any) -> featureflag.Placement:
    return featureflag.placements(ManifestsConfig.model_validate(config), ["production"])[0]


def test_the_resource_is_valid_for_both_operator_generations() -> None:
    with_metadata = featureflag.resource(DOCUMENT, placement())
    without = featureflag.resource(DOCUMENT, placement(), flag_metadata=False)
    assert errors(CRD, with_metadata) == errors(CRD, without) == []
    old = crd_validator("featureflags-v0.8.9.crd.yaml")
    assert errors(old, without) == []
    # Before v0.9.0 the API server prunes flagd's metadata: the strict check catches it.
    assert any("metadata" in e for e in errors(old, with_metadata))
    assert "$schema" not in with_metadata["spec"]["flagSpec"]  # the CRD has no such field
    assert errors(FLAGD, with_metadata["spec"]["flagSpec"]) == []
    assert errors(FLAGD, without["spec"]["flagSpec"]) == []


def test_yaml_keeps_strings_that_yaml_1_1_reads_as_booleans_or_null() -> None:
    resource = featureflag.resource(DOCUMENT, placement())
    text = featureflag.dumps(resource)
    assert yaml.safe_load(text) == resource  # PyYAML reads YAML 1.1, as Kubernetes' go-yaml does
    assert featureflag.dumps(copy.deepcopy(resource)) == text  # the same resource, the same bytes
    assert text.startswith(b"# Written by gitops-flags")


def test_placements_fill_in_the_environment_and_refuse_what_kubernetes_or_the_target_cannot_take() -> None:
    config = ManifestsConfig.model_validate({"environments": {"staging": {"namespace": "{environment}"}}})
    staging, production = featureflag.placements(config, ["staging", "production"])
    assert (staging.name, staging.namespace) == ("gitops-flags-staging", "staging")
    assert staging.path == "staging.yaml"
    assert (production.name, production.namespace) == ("gitops-flags-production", None)
    with pytest.raises(ManifestError, match=r"'qa'.*do not declare"):
        featureflag.placements(ManifestsConfig.model_validate({"environments": {"qa": {}}}), ["production"])
    with pytest.raises(ManifestError, match="is not a Kubernetes name"):
        featureflag.placements(ManifestsConfig(), ["Prod_EU"])
    same_file = ManifestsConfig.model_validate({"path": "flags.yaml"})
    with pytest.raises(ManifestError, match=r"both be written to flags\.yaml"):
        featureflag.placements(same_file, ["staging", "production"])
    for bad in ({"path": "../escape.yaml"}, {"path": "/etc/x.yaml"}, {"path": "a/.git/x.yaml"},
                {"name": "Upper"}, {"labels": {"bad key": "x"}}, {"repository": "not a repo"}):
        with pytest.raises(ValueError):
            ManifestsConfig.model_validate(bad)


def test_verdicts_tell_current_stale_and_drift_apart_and_only_a_keyed_seal_proves_it() -> None:
    p = placement()
    now = featureflag.resource(DOCUMENT, p)
    earlier_doc = copy.deepcopy(DOCUMENT)
    earlier_doc["flags"]["checkout"]["targeting"]["if"][2]["fractional"] = [["on", 5], ["off", 95]]
    earlier = featureflag.resource(earlier_doc, p)
    assert featureflag.verdict(featureflag.dumps(now), now, None, "x") == "current"
    assert featureflag.verdict(yaml.safe_dump(now).encode(), now, None, "x") == "current"  # reformatted
    assert featureflag.verdict(None, now, None, "x") == "missing"
    assert featureflag.verdict(featureflag.dumps(earlier), now, None, "x") == "stale"
    forged = copy.deepcopy(now)
    forged["spec"]["flagSpec"]["flags"]["checkout"]["defaultVariant"] = "on"
    assert featureflag.verdict(featureflag.dumps(forged), now, None, "x") == "drift"  # seal not redone
    # Without a key anyone can recompute the sha256: a forgery then looks like an earlier version (it is
    # still put back). With the key it cannot be forged.
    forged["metadata"]["annotations"]["gitops-flags/seal"] = featureflag.seal(forged, None)
    assert featureflag.verdict(featureflag.dumps(forged), now, None, "x") == "stale"
    key = b"k" * 32
    keyed_now = featureflag.resource(DOCUMENT, p, key=key)
    assert featureflag.verdict(featureflag.dumps(forged), keyed_now, key, "x") == "drift"
    keyed_earlier = featureflag.resource(earlier_doc, p, key=key)
    assert featureflag.verdict(featureflag.dumps(keyed_earlier), keyed_now, key, "x") == "stale"
    assert featureflag.differences(featureflag.dumps(forged), now, "x") == "checkout edited"
    assert featureflag.verdict(b"{unclosed", now, None, "x") == "drift"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    bomb = ("\n".join(lines) + "\n").encode()  # 10**10 nodes once expanded
    assert featureflag.verdict(bomb, now, None, "x") == "drift"  # bounded: refused, not expanded


# --- the wrapper's write path ----------------------------------------------------------------------------


class FailingTarget(DirectoryTarget):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fail = True

    def write(self, files: Mapping[str, bytes], expected: str | None, message: str) -> None:
        if self.fail:
            raise StoreError("GitHub answered 502")
        super().write(files, expected, message)


def test_a_failed_publish_keeps_the_store_write_and_the_next_run_publishes(tmp_path: Path) -> None:
    inner = FileStore(tmp_path / "store")
    target = FailingTarget(tmp_path / "out")
    store = FeatureFlagStore(inner, ManifestsConfig(), ["production"], {(None, "flag-manifests"): target})
    snapshot = store.read()
    version = store.write(StoreState(applied_commit="c0ffee"), {"production": DOCUMENT}, snapshot.version)
    assert inner.read().version == version  # the store's commit point stands
    settled = store.settle()
    assert any("502" in p for p in settled.problems)
    assert not (tmp_path / "out" / "production.yaml").exists()

    target.fail = False
    again = FeatureFlagStore(inner, ManifestsConfig(), ["production"], {(None, "flag-manifests"): target})
    again.read()
    settled = again.settle()
    assert settled.problems == [] and any("not published yet" in n for n in settled.notes)
    written = yaml.safe_load((tmp_path / "out" / "production.yaml").read_text())
    assert written["spec"]["flagSpec"]["flags"] == DOCUMENT["flags"]


class RacingStore(FileStore):
    """Another run writes the store once, right after our publish reads it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.raced = False

    def race(self) -> None:
        if not self.raced:
            self.raced = True
            newer = copy.deepcopy(DOCUMENT)
            newer["flags"]["checkout"]["defaultVariant"] = "on"
            super().write(StoreState(applied_commit="newer"), {"production": newer}, super().read().version)


def test_publish_carries_the_newest_store_version_when_another_run_wrote_meanwhile(tmp_path: Path) -> None:
    inner = RacingStore(tmp_path / "store")

    class Target(DirectoryTarget):
        def write(self, files: Mapping[str, bytes], expected: str | None, message: str) -> None:
            super().write(files, expected, message)
            inner.race()

    targets = {(None, "flag-manifests"): Target(tmp_path / "out")}
    store = FeatureFlagStore(inner, ManifestsConfig(), ["production"], targets)
    store.write(StoreState(applied_commit="c0ffee"), {"production": DOCUMENT}, store.read().version)
    written = yaml.safe_load((tmp_path / "out" / "production.yaml").read_text())
    assert written["spec"]["flagSpec"]["flags"]["checkout"]["defaultVariant"] == "on"


def test_a_directory_target_refuses_a_symlink_out_of_it(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "apps").symlink_to(elsewhere)
    with pytest.raises(ManifestError, match="leads outside"):
        DirectoryTarget(out).write({"apps/flags.yaml": b"x"}, None, "")
    assert list(elsewhere.iterdir()) == []


def test_conflicts_are_retried_then_reported(tmp_path: Path) -> None:
    class Busy(DirectoryTarget):
        def write(self, files: Mapping[str, bytes], expected: str | None, message: str) -> None:
            raise ConflictError("moved")

    store = FeatureFlagStore(FileStore(tmp_path / "s"), ManifestsConfig(), ["production"],
                             {(None, "flag-manifests"): Busy(tmp_path / "out")})
    store.write(StoreState(), {"production": DOCUMENT}, store.read().version)
    assert any("moved" in p for p in store.settle().problems)


# --- the store seal ------------------------------------------------------------------------------------


KEY_TEXT = "fedcba9876543210" * 4


def test_a_tampered_store_is_never_published_and_a_sealed_one_seals_its_manifests(
    example: Example, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITOPS_FLAGS_STORE_KEY", KEY_TEXT)
    assert example.apply(T0) == 0
    seal = example.manifest("production")["metadata"]["annotations"]["gitops-flags/seal"]
    assert seal.startswith("hmac-sha256:")
    served = {path: (example.out / path).read_bytes() for path in PATHS.values()}

    # Someone with write access to the store switches production's flags off and redoes the checksums.
    document = example.store / "production.flagd.json"
    document.write_text(document.read_text().replace('"state": "ENABLED"', '"state": "DISABLED"'))
    regenerate_manifest(example.store)
    capsys.readouterr()
    assert example.apply(T0 + timedelta(minutes=5)) == 1
    assert "does not match its seal" in capsys.readouterr().err
    # The manifests still serve the last sealed state: nothing is published from a store that fails it.
    assert {path: (example.out / path).read_bytes() for path in PATHS.values()} == served


def test_flag_keys_from_a_hand_edited_manifest_reach_the_log_inert_and_bounded(
    example: Example, capsys: pytest.CaptureFixture[str]
) -> None:
    assert example.apply(T0) == 0
    path = example.out / PATHS["production"]
    edited = example.manifest("production")
    flags = edited["spec"]["flagSpec"]["flags"]
    flags["0 ##[add-mask]secret"] = flags["dark_mode"]
    flags["1\n::stop-commands::pwned"] = flags["dark_mode"]
    for i in range(40):
        flags[f"extra{i:02d}"] = flags["dark_mode"]
    path.write_text(yaml.safe_dump(edited))
    capsys.readouterr()
    assert example.apply(T0 + timedelta(minutes=5)) == 1
    err = capsys.readouterr().err
    assert "added" in err and "and 32 more" in err
    assert not any(line.lstrip().startswith("::") or "##[" in line for line in err.splitlines())
    assert "extra00" not in path.read_text()  # restored


HOOK = "https://hooks.example.com/services/T0/B0/drift"


@responses.activate
def test_drift_raises_the_alarm_in_the_log_the_job_summary_and_the_webhook(
    example: Example, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert example.apply(T0) == 0
    edited = example.manifest("production")
    edited["spec"]["flagSpec"]["flags"]["new_checkout_flow"]["state"] = "DISABLED"
    (example.out / PATHS["production"]).write_text(yaml.safe_dump(edited))
    responses.post(HOOK, json={"ok": True})
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("FLAGS_HOOK", HOOK)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    capsys.readouterr()
    assert example.apply(T0 + timedelta(minutes=5)) == 1
    out = capsys.readouterr().out
    assert "::error title=gitops-flags apply::gitops-flags apply: FeatureFlag manifests changed" in out
    assert "[!CAUTION]" in summary.read_text() and "new\\_checkout\\_flow edited" in summary.read_text()
    facts = json.loads(responses.calls[-1].request.body or b"{}")["gitops_flags"]
    assert (facts["event"], facts["command"], facts["restored"]) == ("manifest_drift", "apply", True)
    assert HOOK not in json.dumps(facts)
