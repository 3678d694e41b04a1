"""Typed models of the three file kinds: flag files, schema files and the policy file.

The models check structure only (types, required fields, no unknown fields). Checks that need more than
one value or more than one file (variants that exist, stages that increase, environments declared in the
policy, ...) live in `validate`, which reports them with file and line.

One module (~460 lines): the three kinds share field types and the strict base, and the editor schemas
(`jsonschemas`) are generated from this one place, so a field's description is written once.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import egress

KEY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
DURATION_PATTERN = r"^([0-9]+[smhdw])+$"
_DURATION_PART = re.compile(r"([0-9]+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DELAY_DAYS = 365  # a stage delay beyond a year is a typo, and unbounded ones overflow date arithmetic
MAX_DELAY_SECONDS = MAX_DELAY_DAYS * 86400

# Credentials never sit in the repository: files name environment variables, and URLs carry no password.
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
URL_WITHOUT_PASSWORD = r"^https?://([^/?#@:]*@)?([^/?#@:\[\]]+|\[[0-9A-Fa-f:.]+\])(:[0-9]+)?([/?#].*)?$"
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN, description="Name of an environment variable")]

FlagType = Literal["boolean", "string", "number", "object"]
STAGE_NAMES: dict[str, int] = {"initial": 5, "early": 25, "half": 50, "majority": 75, "full": 100}
StageName = Literal["initial", "early", "half", "majority", "full"]
DEFAULT_STAGES: tuple[int, ...] = (5, 25, 50, 75, 100)

Operator = Literal[
    "equals",
    "not_equals",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "ends_with",
    "greater_than",
    "greater_or_equal",
    "less_than",
    "less_or_equal",
    "semver_equals",
    "semver_greater_than",
    "semver_less_than",
]
OPERATORS: tuple[str, ...] = Operator.__args__  # type: ignore[attr-defined]

ChangeType = Literal[
    "create",
    "delete",
    "toggle",
    "rollout",
    "update",
    "schema_create",
    "schema_update",
    "schema_delete",
    "governance",
]
ChangeKind = Literal["flag", "schema", "governance"]


def duration_seconds(text: str) -> int:
    """`90m` → 5400, `1h30m` → 5400, `2d` → 172800."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"not a duration: {text!r} (use forms like 90m, 2h, 1d, 1h30m)")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


class _Strict(BaseModel):
    # defer_build: a model's validator is built on its first use, so a command builds only the models it
    # uses (and a nested model's schema only inside its parent's)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


# --- flag files -------------------------------------------------------------------------------------


class Condition(_Strict):
    """One comparison of an evaluation-context attribute, e.g. `email ends_with "@acme.com"`."""

    attribute: str = Field(min_length=1, description="Evaluation-context attribute, e.g. email")
    operator: Operator
    value: Any = Field(description="A value, or a list of values for `in` / `not_in`")


class AllOf(_Strict):
    all: list[Condition] = Field(min_length=1)


class AnyOf(_Strict):
    any: list[Condition] = Field(min_length=1)


def _when_tag(value: Any) -> str:
    if isinstance(value, AllOf):
        return "all"
    if isinstance(value, AnyOf):
        return "any"
    if isinstance(value, dict):
        if "all" in value:
            return "all"
        if "any" in value:
            return "any"
    return "condition"


When = Annotated[
    Annotated[Condition, Tag("condition")] | Annotated[AllOf, Tag("all")] | Annotated[AnyOf, Tag("any")],
    Discriminator(_when_tag),
]


class TargetingRule(_Strict):
    name: str | None = None
    when: When
    variant: str


class HttpHealthCheck(_Strict):
    type: Literal["http"]
    url: str = Field(pattern=URL_WITHOUT_PASSWORD)
    expect_status: StrictInt = Field(200, ge=100, le=599)
    json_field: str | None = Field(
        None, description="Dotted path of a number in the JSON body, e.g. data.error_rate"
    )
    comparison: Literal["<", "<=", ">", ">=", "=="] = "<="
    threshold: StrictFloat | None = Field(None, allow_inf_nan=False)
    headers_from_env: dict[str, EnvName] = Field(
        default_factory=dict, description="Header name → name of the environment variable holding its value"
    )
    timeout_seconds: StrictFloat = Field(10, gt=0, le=60, allow_inf_nan=False)

    @model_validator(mode="after")
    def _field_and_threshold(self) -> HttpHealthCheck:
        # One without the other would pause the rollout at every scheduled run instead of failing here.
        if self.json_field is not None and self.threshold is None:
            raise ValueError("json_field needs a threshold to compare the number with")
        if self.threshold is not None and self.json_field is None:
            raise ValueError("threshold needs a json_field: the dotted path of the number in the JSON body")
        return self


class PrometheusHealthCheck(_Strict):
    type: Literal["prometheus"]
    server: str = Field(pattern=URL_WITHOUT_PASSWORD)
    query: str = Field(min_length=1)
    comparison: Literal["<", "<=", ">", ">=", "=="] = "<="
    threshold: StrictFloat = Field(allow_inf_nan=False)
    token_env: EnvName | None = Field(None, description="Environment variable holding a bearer token")
    timeout_seconds: StrictFloat = Field(10, gt=0, le=60, allow_inf_nan=False)


Stage = Annotated[StrictInt, Field(gt=0, le=100)] | StageName
HealthCheck = Annotated[HttpHealthCheck | PrometheusHealthCheck, Field(discriminator="type")]


class RolloutPlan(_Strict):
    """A staged percentage rollout of one variant, advanced by scheduled runs."""

    variant: str
    stages: list[Stage] = Field(default_factory=lambda: list[Stage](DEFAULT_STAGES), min_length=1)
    stage_delay: str = Field(
        "1d", pattern=DURATION_PATTERN, description="Minimum time between stages: 90m, 2h, 1d"
    )
    start_at: datetime | None = None
    paused: StrictBool = False
    health_check: HealthCheck | None = None
    on_failure: Literal["rollback", "pause"] = "rollback"

    @field_validator("stage_delay")
    @classmethod
    def _bounded_delay(cls, value: str) -> str:
        # the pattern has been checked: only the sum is left
        if sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value)) > MAX_DELAY_SECONDS:
            raise ValueError(f"stage_delay {value!r} is longer than {MAX_DELAY_DAYS}d, the longest allowed")
        return value

    @model_validator(mode="after")
    def _before_year_9999(self) -> RolloutPlan:
        # each delay is under a year: most plans are decades short of 9999 without any arithmetic
        if self.start_at is not None and self.start_at.year + len(self.stages) + 1 >= 9999:
            span = timedelta(seconds=self.delay_seconds() * (len(self.stages) - 1))
            try:
                last = (self.start_at + span).astimezone(UTC)
            except OverflowError:
                last = None
            if last is None or last.year >= 9999:
                raise ValueError("start_at plus the stage delays reaches the year 9999; start earlier")
        return self

    @field_validator("start_at", mode="before")
    @classmethod
    def _not_a_number(cls, value: Any) -> Any:
        # pydantic would read a number as Unix seconds; in a file that is a mistake, not a time.
        if isinstance(value, int | float):
            raise ValueError("start_at must be a date and time such as 2026-12-01T09:00:00Z, not a number")
        return value

    @field_validator("start_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("start_at needs a time zone, e.g. 2026-12-01T09:00:00Z")
        return value

    def percentages(self) -> list[int]:
        return [STAGE_NAMES[s] if isinstance(s, str) else s for s in self.stages]

    def delay_seconds(self) -> int:
        return duration_seconds(self.stage_delay)


class EnvironmentState(_Strict):
    enabled: StrictBool = Field(
        description="false is the kill switch: every context gets the off variant (docs/formats.md)")
    default_variant: str | None = Field(None, description="Overrides the flag's default_variant here")
    rules: list[TargetingRule] = Field(default_factory=list, description="First match wins")
    rollout: RolloutPlan | None = None


class Flag(_Strict):
    key: str = Field(pattern=KEY_PATTERN, description="Equals the file name's stem")
    name: str | None = None
    description: str = ""
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)
    type: FlagType
    schema_ref: str | None = Field(
        None, alias="schema", description="Object flags: name of a schema under flags/schemas/"
    )
    variants: dict[str, Any] = Field(min_length=1)
    default_variant: str
    environments: dict[str, EnvironmentState] = Field(default_factory=dict)

    def env_default(self, environment: str) -> str:
        state = self.environments.get(environment)
        if state is not None and state.default_variant is not None:
            return state.default_variant
        return self.default_variant


# --- schema files -----------------------------------------------------------------------------------


class SchemaDoc(_Strict):
    name: str = Field(pattern=KEY_PATTERN)
    version: StrictInt = Field(ge=1, description="A changed schema must raise its version")
    description: str = ""
    json_schema: dict[str, Any] = Field(alias="schema", description="A JSON Schema (draft 2020-12)")


# --- policy file ------------------------------------------------------------------------------------

StrOrList = str | list[str]


def as_list(value: StrOrList | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class Match(_Strict):
    """A condition over a change and its PR. Every field that is set must hold (AND);
    `any`, `all` and `not` combine conditions. Used by rules (`match`) and by steps (`when`)."""

    kind: StrOrList | None = None
    environment: StrOrList | None = None
    change_type: StrOrList | None = None
    key: StrOrList | None = Field(None, description="Glob over flag keys / schema names")
    path: StrOrList | None = Field(None, description="Glob over file paths, relative to the repository root")
    tags: StrOrList | None = Field(None, description="Holds when the flag has any of these tags")
    breaking: StrictBool | None = None
    enabled: StrictBool | None = Field(
        None, description="Flag changes: the flag is enabled (true) or disabled (false) in the environment "
                          "after the change; true for a toggle means turning it on, false the kill switch"
    )
    label: StrOrList | None = Field(None, description="Holds when the PR has any of these labels")
    any: list[Match] | None = None
    all: list[Match] | None = None
    not_: Match | None = Field(None, alias="not")


class PolicyRule(_Strict):
    match: Match
    workflow: str


class Step(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    role: str
    approvals: StrictInt = Field(1, ge=1, le=100)
    after: list[str] = Field(default_factory=list)
    when: Match | None = None
    codeowner: StrictBool = Field(
        False, description="The approver must also own the changed file (base CODEOWNERS)"
    )
    description: str = ""


class Workflow(_Strict):
    description: str = ""
    steps: list[Step] = Field(min_length=1)


class Options(_Strict):
    allow_author: StrictBool = False
    distinct_approvers: StrictBool = True
    stale_approvals: Literal["content", "commit", "keep"] = "content"
    count_bots: StrictBool = False
    last_pusher_can_approve: StrictBool = Field(
        True, description="false: whoever pushed the PR's latest commit does not count for any step"
    )
    on_unapproved: Literal["block", "warn"] = "block"
    webhook_env: EnvName | None = Field(None, description="Environment variable holding a webhook URL")


class HealthChecks(_Strict):
    """What health gates may use; read from the base policy only (docs/rollouts.md, "Gate rules")."""

    env: list[EnvName] = Field(default_factory=list, description=(
        "Variables a gate may send (headers_from_env, token_env); never GITHUB_TOKEN, ACTIONS_*, RUNNER_*, "
        "GITHUB_*, INPUT_*, GITOPS_FLAGS_*"))
    hosts: list[str] = Field(default_factory=list, description=(
        "Hosts gates may call: a name, *.domain or an address; empty: any host with a public address"))
    private_networks: StrictBool = Field(False, description="Allow private addresses (10/8, 192.168/16, ...)")
    loopback: StrictBool = Field(False, description="Allow this machine's addresses (127.0.0.0/8, ::1)")
    proxy: StrictBool = Field(False, description=(
        "Send gates through the runner's HTTP(S)_PROXY; the proxy resolves names, so `hosts` is required"))

    @field_validator("env", "hosts")
    @classmethod
    def _usable(cls, entries: list[str], info: ValidationInfo) -> list[str]:
        problem = egress.forbidden_env if info.field_name == "env" else egress.host_pattern_problem
        for entry in entries:
            reason = problem(entry)
            if reason is not None:
                raise ValueError(reason)
        return entries

    @model_validator(mode="after")
    def _proxy_needs_hosts(self) -> HealthChecks:
        if self.proxy and not self.hosts:
            raise ValueError("proxy: true needs a `hosts` list: through a proxy the addresses cannot be "
                             "checked, so the allow-list is the only bound")
        return self

    def rules(self) -> egress.Rules:
        return egress.Rules(frozenset(self.env), tuple(self.hosts), self.private_networks, self.loopback,
                            self.proxy)


# --- FeatureFlag manifests (OpenFeature Operator) ---------------------------------------------------

# Kubernetes' own name rules (DNS-1123 subdomain / label); `{environment}` is replaced before they apply.
K8S_NAME_PATTERN = r"^([a-z0-9{}]([-a-z0-9.{}]*[a-z0-9{}])?)$"
K8S_LABEL_KEY_PATTERN = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
K8S_LABEL_VALUE_PATTERN = r"^(|[A-Za-z0-9{}]([-A-Za-z0-9_.{}]*[A-Za-z0-9{}])?)$"
# A relative POSIX path to a .yaml file; no part starts with `.` (so no `..`), no leading `/`.
MANIFEST_PATH_PATTERN = r"^([A-Za-z0-9_{}-][A-Za-z0-9_.{}-]*/)*[A-Za-z0-9_{}-][A-Za-z0-9_.{}-]*\.ya?ml$"
REPOSITORY_PATTERN = r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$"
LabelMap = dict[
    Annotated[str, Field(pattern=K8S_LABEL_KEY_PATTERN, max_length=316)],
    Annotated[str, Field(pattern=K8S_LABEL_VALUE_PATTERN, max_length=63)],
]


class FeatureFlagResource(_Strict):
    """One environment's `FeatureFlag` resource: where it is written and what it is called. Unset
    fields take the value of the `manifests:` section. `{environment}` in a text is the environment."""

    name: str | None = Field(None, pattern=K8S_NAME_PATTERN, max_length=253)
    namespace: str | None = Field(None, pattern=K8S_NAME_PATTERN, max_length=63)
    labels: LabelMap = Field(default_factory=dict, description="Added to the section's labels")
    path: str | None = Field(None, pattern=MANIFEST_PATH_PATTERN, description="File in the target")
    repository: str | None = Field(None, pattern=REPOSITORY_PATTERN, description="OWNER/NAME")
    branch: str | None = None


class ManifestsConfig(_Strict):
    """Write one OpenFeature Operator `FeatureFlag` resource per environment (docs/store.md)."""

    target: Literal["github-branch", "directory"] = Field(
        "github-branch", description="A branch of a GitHub repository, or a directory (local use, tests)"
    )
    repository: str | None = Field(
        None, pattern=REPOSITORY_PATTERN, description="OWNER/NAME; default: this repository"
    )
    branch: str = "flag-manifests"
    token_env: EnvName | None = Field(
        None, description="Variable holding a token that may write the repository (default GITHUB_TOKEN)"
    )
    directory: str = Field("flag-manifests", description="target: directory; relative to the repository")
    name: str = Field("gitops-flags-{environment}", pattern=K8S_NAME_PATTERN, max_length=253)
    namespace: str | None = Field(None, pattern=K8S_NAME_PATTERN, max_length=63)
    labels: LabelMap = Field(default_factory=dict)
    path: str = Field("{environment}.yaml", pattern=MANIFEST_PATH_PATTERN)
    flag_metadata: StrictBool = Field(
        True, description="Carry flagd metadata in the resource (the operator keeps it from v0.9.0)"
    )
    environments: dict[str, FeatureFlagResource] = Field(
        default_factory=dict, description="Per-environment settings; every environment gets a resource"
    )


class StoreConfig(_Strict):
    type: Literal["file", "github-branch", "litestar-flags"] = "file"
    path: str = ".flag-store"
    branch: str = "flag-store"
    repository: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$",
        description="github-branch: OWNER/NAME of a separate repository holding the store (default: this "
        "one); written with the token in GITOPS_FLAGS_STORE_TOKEN",
    )
    url: str | None = None
    manifests: ManifestsConfig | None = None


class Policy(_Strict):
    version: Literal[1] = 1
    flags_dir: str = "flags"
    environments: list[str] = Field(min_length=1)
    roles: dict[str, list[str]] = Field(default_factory=dict)
    rules: list[PolicyRule] = Field(min_length=1)
    workflows: dict[str, Workflow] = Field(min_length=1)
    options: Options = Field(default_factory=Options)
    store: StoreConfig = Field(default_factory=StoreConfig)
    health_checks: HealthChecks = Field(default_factory=HealthChecks)

    @field_validator("version", mode="before")
    @classmethod
    def _version_not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # Literal[1] would take `true` as 1
            raise ValueError(f"expected the format version 1, got {str(value).lower()}")
        return value

    @property
    def schemas_dir(self) -> str:
        return f"{self.flags_dir.rstrip('/')}/schemas"


POLICY_PATH = ".github/gitops-flags.yml"
CODEOWNERS_PATHS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")
BUILTIN_ROLE_CODEOWNER = "codeowner"
