"""`doctor`'s checklist: which GitHub settings the governance depends on, decided from their API answers.

A writer can post the required status themselves, and a PR can replace the apply workflow; only GitHub's
own settings stop that. This module is pure: `Facts` holds what the API answered (each answer either data,
"missing" — GitHub says it is not configured — or "unknown" — the token may not read it), and `checks`
turns them into `Check`s, each ok / missing / unknown with the exact fix; `Checklist` is the result every
format (text, JSON, Markdown, the job summary) renders. `github.settings` fetches the facts.

One module on purpose (~560 lines): the checklist is one list of short checks over the same `Facts`, read
side by side with GitHub's settings pages; split, a reader would chase one checklist through files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from . import codeowners, render
from .model import POLICY_PATH

Status = Literal["ok", "missing", "unknown"]
KEY_SECRET = "GITOPS_FLAGS_STORE_KEY"
ADMIN_ROLE_ID = 5  # RepositoryRole actor_id of the admin role in a ruleset's bypass list
ADMIN_ACTORS = ("OrganizationAdmin", "EnterpriseOwner")
# The GitHub Actions app (slug `github-actions`): statuses posted with a workflow's GITHUB_TOKEN come from it.
# GitHub's docs do not print the id; `GET /apps/github-actions` answers 15368 (node_id MDM6QXBwMTUzNjg=,
# "03:App15368"), as captured check-run `app` objects and required-check payloads in public repositories show.
GITHUB_ACTIONS_APP_ID = 15368
ANY_SOURCE = -1  # classic protection's app_id for "any app (or none) may set the status"


@dataclass(frozen=True)
class Answer:
    """One API answer: `data` when `status` is ok; otherwise why there is none."""

    status: Status
    data: Any = None
    detail: str = ""  # e.g. "403 Resource not accessible by integration"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


MISSING = Answer("missing")


@dataclass(frozen=True)
class BranchRules:
    """What protects one branch: classic protection and the active ruleset rules (with their rulesets)."""

    protection: Answer = MISSING  # GET /repos/{r}/branches/{b}/protection
    rules: Answer = field(default_factory=lambda: Answer("ok", []))  # GET /repos/{r}/rules/branches/{b}
    rulesets: Mapping[int, Answer] = field(default_factory=dict)  # GET /repos/{r}/rulesets/{id}


@dataclass(frozen=True)
class Facts:
    repository: str
    owner_type: str  # "Organization" or "User"
    default_branch: str
    default: BranchRules
    codeowners: Answer  # data: (path, text) of the CODEOWNERS file GitHub uses
    environment_name: str
    environment: Answer  # GET /repos/{r}/environments/{name}
    branch_policies: Answer  # GET …/deployment-branch-policies (data: list of names)
    environment_secrets: Answer  # data: list of names
    repository_secrets: Answer  # data: list of names
    workflow_permissions: Answer  # GET /repos/{r}/actions/permissions/workflow
    store_kind: str = "github-branch"  # the policy's store type
    store_repository: str = ""  # where the store branch lives ("" when not a branch store)
    store_branch: str = ""
    store: BranchRules | None = None
    # The app whose statuses `check` posts: GitHub Actions with GITHUB_TOKEN, or the GitHub App whose
    # installation token the action is given (`doctor --expected-app-id`).
    expected_app_id: int = GITHUB_ACTIONS_APP_ID


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    status: Status
    required: bool
    detail: str
    fix: str = ""


def status_context(branch: str) -> str:
    """The commit status `check` posts for PRs into `branch`."""
    return f"gitops-flags: {branch}"


# --- the checks (pure) ----------------------------------------------------------------------------------


def checks(facts: Facts) -> list[Check]:
    b = facts.default
    out = [
        _required_status(facts),
        _from_reviews(
            facts,
            "code-owner-review",
            "Code-owner review is required on the default branch",
            "require_code_owner_reviews",
            "require_code_owner_review",
            _fix_reviews(facts, "code"),
        ),
        _codeowners(facts),
        _from_reviews(
            facts,
            "dismiss-stale-reviews",
            "Stale approvals are dismissed when new commits are pushed",
            "dismiss_stale_reviews",
            "dismiss_stale_reviews_on_push",
            _fix_reviews(facts, "stale"),
        ),
        _no_bypass(facts, b),
        _store_push(facts),
        _environment(facts),
        _secrets(facts),
        _workflow_permissions(facts, "default_workflow_permissions", "read"),
        _workflow_permissions(facts, "can_approve_pull_request_reviews", False),
        _status_source(facts),
    ]
    if facts.owner_type == "Organization":
        out.append(_org_pinning(facts))
    return out


def _rules_of(rules: BranchRules, kind: str) -> list[dict[str, Any]]:
    data = rules.rules.data if rules.rules.ok and isinstance(rules.rules.data, list) else []
    return [r for r in data if isinstance(r, dict) and r.get("type") == kind]


def _classic(rules: BranchRules) -> dict[str, Any] | None:
    return rules.protection.data if rules.protection.ok and isinstance(rules.protection.data, dict) else None


def _unknown_note(*answers: Answer) -> str:
    found = [a.detail for a in answers if a.status == "unknown" and a.detail]
    return f" (cannot read: {'; '.join(found)})" if found else ""


def _decide(satisfied: bool, answers: Sequence[Answer]) -> Status:
    """ok when anything readable satisfies it; else unknown when something could not be read."""
    if satisfied:
        return "ok"
    return "unknown" if any(a.status == "unknown" for a in answers) else "missing"


def _required_status(facts: Facts) -> Check:
    b, context = facts.default, status_context(facts.default_branch)
    classic = _classic(b) or {}
    checks_ = classic.get("required_status_checks") or {}
    in_classic = context in (checks_.get("contexts") or []) or any(
        c.get("context") == context for c in checks_.get("checks") or [] if isinstance(c, dict)
    )
    in_rules = any(
        c.get("context") == context
        for r in _rules_of(b, "required_status_checks")
        for c in (r.get("parameters") or {}).get("required_status_checks") or []
    )
    status = _decide(in_classic or in_rules, [b.protection, b.rules])
    where = "branch protection" if in_classic else "a ruleset" if in_rules else ""
    detail = (
        f"`{context}` is required by {where}"
        if where
        else f"`{context}` is not a required status check on {facts.default_branch}"
        + _unknown_note(b.protection, b.rules)
    )
    fix = (
        f"Settings → Branches → the rule for `{facts.default_branch}` → Require status checks to pass → "
        f"add `{context}` (or Settings → Rules → Rulesets → Require status checks to pass). API: "
        f"`gh api -X POST repos/{facts.repository}/branches/{facts.default_branch}/protection/"
        f"required_status_checks/contexts -f 'contexts[]={context}'`"
    )
    return Check("required-status", f"The check's status `{context}` is required", status, True, detail, fix)


def _from_reviews(
    facts: Facts, check_id: str, title: str, classic_key: str, rule_key: str, fix: str
) -> Check:
    b = facts.default
    reviews = (_classic(b) or {}).get("required_pull_request_reviews") or {}
    in_classic = reviews.get(classic_key) is True
    in_rules = any((r.get("parameters") or {}).get(rule_key) is True for r in _rules_of(b, "pull_request"))
    status = _decide(in_classic or in_rules, [b.protection, b.rules])
    detail = (
        "on (branch protection)"
        if in_classic
        else "on (a ruleset)"
        if in_rules
        else "off" + _unknown_note(b.protection, b.rules)
    )
    return Check(check_id, title, status, True, detail, fix)


def _fix_reviews(facts: Facts, which: str) -> str:
    base = (
        f"repos/{facts.repository}/branches/{facts.default_branch}/protection/required_pull_request_reviews"
    )
    if which == "code":
        return (
            "Settings → Branches → the rule for the default branch → Require a pull request before merging → "
            f"Require review from Code Owners (or the ruleset's same option). API: `gh api -X PATCH {base} "
            "-F require_code_owner_reviews=true`"
        )
    return (
        "Settings → Branches → the rule for the default branch → Dismiss stale pull request approvals when "
        f"new commits are pushed (rulesets: the same option). API: `gh api -X PATCH {base} "
        "-F dismiss_stale_reviews=true`"
    )


def _codeowners(facts: Facts) -> Check:
    title = "CODEOWNERS covers the workflows, the policy file and CODEOWNERS itself"
    answer = facts.codeowners
    fix = (
        "Add owners (the people who approve governance changes) to CODEOWNERS on the default branch: "
        "`/.github/workflows/ @OWNERS`, `/" + POLICY_PATH + " @OWNERS`, `/.github/CODEOWNERS @OWNERS`"
    )
    if not answer.ok:
        what = (
            "no CODEOWNERS file on the default branch"
            if answer.status == "missing"
            else (f"cannot read CODEOWNERS{_unknown_note(answer)}")
        )
        return Check("codeowners", title, answer.status, True, what, fix)
    path, text = answer.data
    owners = codeowners.parse(text, path)
    wanted = {
        ".github/workflows/**": ".github/workflows/gitops-flags-apply.yml",
        POLICY_PATH: POLICY_PATH,
        path: path,
    }
    uncovered = [label for label, sample in wanted.items() if not owners.owners_for(sample)]
    if uncovered:
        return Check(
            "codeowners",
            title,
            "missing",
            True,
            f"{path} has no owner for {', '.join(f'`{u}`' for u in uncovered)}",
            fix,
        )
    return Check("codeowners", title, "ok", True, f"{path} names owners for all three")


def _no_bypass(facts: Facts, b: BranchRules) -> Check:
    title = "Nobody but admins can bypass the default branch's rules"
    reasons: list[str] = []
    reviews = (_classic(b) or {}).get("required_pull_request_reviews") or {}
    allowances = reviews.get("bypass_pull_request_allowances") or {}
    named = [
        u.get("login") or u.get("slug") or u.get("name") or "?"
        for kind in ("users", "teams", "apps")
        for u in allowances.get(kind) or []
        if isinstance(u, dict)
    ]
    if named:
        reasons.append(f"branch protection lets {', '.join(map(str, named))} bypass required pull requests")
    unreadable: list[Answer] = [b.protection, b.rules]
    for ruleset_id in sorted({int(r["ruleset_id"]) for r in _rules_of_any(b) if "ruleset_id" in r}):
        answer = b.rulesets.get(ruleset_id, Answer("unknown", detail="not fetched"))
        if not answer.ok or not isinstance(answer.data, dict) or "bypass_actors" not in answer.data:
            # GitHub returns bypass_actors only to those who may edit the ruleset.
            unreadable.append(
                answer
                if not answer.ok
                else Answer("unknown", detail=f"ruleset {ruleset_id}'s bypass list is hidden from this token")
            )
            continue
        for actor in answer.data["bypass_actors"] or []:
            if not _admin_actor(actor):
                reasons.append(
                    f"ruleset {answer.data.get('name', ruleset_id)!r} lets {actor.get('actor_type')} "
                    f"{actor.get('actor_id')} bypass it ({actor.get('bypass_mode', 'always')})"
                )
    fix = (
        "Settings → Branches → the rule for the default branch → clear 'Allow specified actors to bypass "
        "required pull requests'; Settings → Rules → Rulesets → each ruleset → Bypass list: keep only "
        "Repository admin / Organization admin. API (classic): `gh api -X PATCH repos/"
        f"{facts.repository}/branches/{facts.default_branch}/protection/required_pull_request_reviews "
        '--input -` with `{"bypass_pull_request_allowances": {"users": [], "teams": [], "apps": []}}`'
    )
    if reasons:
        return Check("no-bypass", title, "missing", True, "; ".join(reasons), fix)
    if any(a.status == "unknown" for a in unreadable):
        return Check(
            "no-bypass", title, "unknown", True, "no bypass found, but" + _unknown_note(*unreadable), fix
        )
    return Check("no-bypass", title, "ok", True, "no bypass for anyone but admins")


def _rules_of_any(b: BranchRules) -> list[dict[str, Any]]:
    data = b.rules.data if b.rules.ok and isinstance(b.rules.data, list) else []
    return [r for r in data if isinstance(r, dict)]


def _admin_actor(actor: Mapping[str, Any]) -> bool:
    kind = actor.get("actor_type")
    return kind in ADMIN_ACTORS or (kind == "RepositoryRole" and actor.get("actor_id") == ADMIN_ROLE_ID)


def _store_push(facts: Facts) -> Check:
    title = "The store branch accepts no pushes but the store's own, no force pushes, no deletion"
    if facts.store is None:
        return Check(
            "store-push",
            title,
            "ok",
            True,
            f"the store is a {facts.store_kind} store, not a branch: protect it where it lives",
        )
    b, branch = facts.store, facts.store_branch
    classic = _classic(b) or {}
    restricted = classic.get("restrictions") is not None
    no_force = not (classic.get("allow_force_pushes") or {}).get("enabled", False)
    no_delete = not (classic.get("allow_deletions") or {}).get("enabled", False)
    classic_ok = b.protection.ok and restricted and no_force and no_delete
    kinds = {r.get("type") for r in _rules_of_any(b)}
    rules_ok = {"update", "non_fast_forward", "deletion"} <= kinds
    status = _decide(classic_ok or rules_ok, [b.protection, b.rules])
    where = f"{facts.store_repository}:{branch}"
    if status == "ok":
        detail = f"{where} is restricted ({'branch protection' if classic_ok else 'a ruleset'})"
    else:
        gaps = []
        if not restricted:
            gaps.append("pushes are not restricted")
        if not no_force:
            gaps.append("force pushes are allowed")
        if not no_delete:
            gaps.append("deletion is allowed")
        detail = f"{where}: {', '.join(gaps) or 'not protected'}" + _unknown_note(b.protection, b.rules)
    fix = (
        f"In {facts.store_repository}: Settings → Rules → Rulesets → New branch ruleset for `{branch}` with "
        "Restrict updates, Restrict deletions and Block force pushes, bypass list: only the App (or "
        "github-actions) that writes the store; or Settings → Branches → a rule for `{branch}` with "
        "Restrict who can push. A separate store repository that no person can push to is stronger still "
        "(docs/store.md)"
    ).replace("{branch}", branch)
    return Check("store-push", title, status, True, detail, fix)


def _environment(facts: Facts) -> Check:
    name, env = facts.environment_name, facts.environment
    title = f"The deployment environment `{name}` exists and only the default branch may use it"
    fix = (
        f"Settings → Environments → New environment `{name}` → Deployment branches and tags: Selected "
        f"branches and tags → add `{facts.default_branch}` only. API: `gh api -X PUT repos/{facts.repository}"
        f'/environments/{name} --input -` with `{{"deployment_branch_policy": {{"protected_branches": '
        f'false, "custom_branch_policies": true}}}}`, then `gh api -X POST repos/{facts.repository}/'
        f"environments/{name}/deployment-branch-policies -f name={facts.default_branch} -f type=branch`"
    )
    if not env.ok:
        what = (
            f"no environment `{name}`" if env.status == "missing" else f"cannot read it{_unknown_note(env)}"
        )
        return Check("environment", title, env.status, True, what, fix)
    policy = (env.data or {}).get("deployment_branch_policy")
    if policy is None:
        return Check("environment", title, "missing", True, "every branch may deploy to it", fix)
    if policy.get("protected_branches"):
        return Check(
            "environment",
            title,
            "missing",
            True,
            "any protected branch may deploy to it, not only the default branch",
            fix,
        )
    answer = facts.branch_policies
    if not answer.ok:
        return Check(
            "environment",
            title,
            answer.status,
            True,
            f"cannot read its branch policies{_unknown_note(answer)}",
            fix,
        )
    names = sorted(set(answer.data or []))
    if names != [facts.default_branch]:
        return Check(
            "environment",
            title,
            "missing",
            True,
            f"its branch policies allow {', '.join(f'`{n}`' for n in names) or 'nothing'}, not only "
            f"`{facts.default_branch}`",
            fix,
        )
    return Check("environment", title, "ok", True, f"only `{facts.default_branch}` may use it")


def _secrets(facts: Facts) -> Check:
    name = facts.environment_name
    title = f"The seal key is a secret of `{name}`, and of nothing every branch can read"
    fix = (
        f"`openssl rand -hex 32 | gh secret set {KEY_SECRET} --env {name} --repo {facts.repository}` "
        f"(Settings → Environments → {name} → Environment secrets)"
    )
    in_repo = facts.repository_secrets.ok and KEY_SECRET in (facts.repository_secrets.data or [])
    if in_repo:
        return Check(
            "secrets",
            title,
            "missing",
            True,
            f"{KEY_SECRET} is a repository secret: a workflow pushed on any branch can read it",
            f"`gh secret delete {KEY_SECRET} --repo {facts.repository}`, then {fix}",
        )
    answer = facts.environment_secrets
    if not answer.ok:
        what = (
            f"no environment `{name}`"
            if answer.status == "missing"
            else (f"cannot list its secrets{_unknown_note(answer)}")
        )
        return Check("secrets", title, answer.status, True, what, fix)
    if KEY_SECRET not in (answer.data or []):
        return Check("secrets", title, "missing", True, f"`{name}` has no secret {KEY_SECRET}", fix)
    if facts.repository_secrets.status == "unknown":
        return Check(
            "secrets",
            title,
            "unknown",
            True,
            f"`{name}` holds {KEY_SECRET}; whether it is also a repository secret"
            + _unknown_note(facts.repository_secrets),
            fix,
        )
    return Check("secrets", title, "ok", True, f"`{name}` holds {KEY_SECRET}, and the repository does not")


def _workflow_permissions(facts: Facts, key: str, wanted: Any) -> Check:
    answer = facts.workflow_permissions
    page = "Settings → Actions → General → Workflow permissions"
    api = (
        f"`gh api -X PUT repos/{facts.repository}/actions/permissions/workflow "
        "-f default_workflow_permissions=read -F can_approve_pull_request_reviews=false`"
    )
    if key == "default_workflow_permissions":
        check_id, title = "workflow-permissions", "Workflows get a read-only GITHUB_TOKEN by default"
        fix = f"{page} → Read repository contents and packages permissions. API: {api}"
    else:
        check_id, title = "actions-approve", "GitHub Actions may not approve pull requests"
        fix = f"{page} → clear 'Allow GitHub Actions to create and approve pull requests'. API: {api}"
    if not answer.ok:
        return Check(check_id, title, "unknown", True, "cannot read it" + _unknown_note(answer), fix)
    value = (answer.data or {}).get(key)
    status: Status = "ok" if value == wanted else "missing"
    return Check(check_id, title, status, True, f"{key}: {json.dumps(value)}", fix if status != "ok" else "")


def _app_name(app_id: int) -> str:
    return f"the GitHub Actions app ({app_id})" if app_id == GITHUB_ACTIONS_APP_ID else f"app {app_id}"


def _status_sources(facts: Facts) -> list[tuple[str, Any]]:
    """Each requirement of the status on the default branch as (where, the app id it must come from).

    Classic protection lists `checks: [{context, app_id}]`, app_id null or -1 for any source (GitHub: "Pass
    -1 to explicitly allow any app to set the status"); a context only in the deprecated `contexts` has no
    source recorded. A ruleset's entry has `integration_id` only when bound ("The optional integration ID
    that this status check must originate from").
    """
    b, context = facts.default, status_context(facts.default_branch)
    classic = (_classic(b) or {}).get("required_status_checks") or {}
    found: list[tuple[str, Any]] = [
        ("branch protection", c.get("app_id"))
        for c in classic.get("checks") or []
        if isinstance(c, dict) and c.get("context") == context
    ]
    if not found and context in (classic.get("contexts") or []):
        found.append(("branch protection", None))
    found += [
        (f"ruleset {r.get('ruleset_id', '?')}", c.get("integration_id"))
        for r in _rules_of(b, "required_status_checks")
        for c in (r.get("parameters") or {}).get("required_status_checks") or []
        if isinstance(c, dict) and c.get("context") == context
    ]
    return found


def _status_source(facts: Facts) -> Check:
    """GitHub enforces every requirement of the status, so one bound to the expected app is enough: a status
    that anyone with push access posts through the API (or on a queue-looking branch) satisfies none."""
    b, context, want = facts.default, status_context(facts.default_branch), facts.expected_app_id
    app = _app_name(want)
    title = f"The required status `{context}` must come from {app}"
    sources = _status_sources(facts)
    bound = [where for where, app_id in sources if app_id == want]
    status = _decide(bool(bound), [b.protection, b.rules])
    if bound:
        return Check("status-source", title, status, True, f"bound to {app} by {' and '.join(bound)}")
    gaps = [
        f"{where} accepts it from any source"
        if app_id in (None, ANY_SOURCE)
        else f"{where} binds it to app {app_id}, whose statuses `check` does not post (its own id: pass "
        "`--expected-app-id` when check runs with that App's token)"
        for where, app_id in sources
    ]
    unbound = f"`{context}` is not a required status check, so nothing binds its source"
    detail = ("; ".join(gaps) if gaps else unbound) + _unknown_note(b.protection, b.rules)
    ruleset = next((where.split()[1] for where, _ in sources if where.startswith("ruleset ")), "ID")
    fix = (
        f"Settings → Branches → the rule for `{facts.default_branch}` → Require status checks to pass → "
        f"`{context}` → source: {'GitHub Actions' if want == GITHUB_ACTIONS_APP_ID else f'app {want}'}, "
        "not 'Any source' (rulesets: Settings → Rules → Rulesets → the ruleset → Require status checks to "
        f"pass → the same choice). API (classic; `checks` replaces the list, so name your other required "
        f"checks too): `gh api -X PATCH repos/{facts.repository}/branches/{facts.default_branch}/protection/"
        f'required_status_checks --input -` with `{{"checks": [{{"context": "{context}", '
        f'"app_id": {want}}}]}}`; rulesets: `gh api -X PUT repos/{facts.repository}/rulesets/{ruleset} '
        f"--input -` with the ruleset's `rules`, its status entry "
        f'`{{"context": "{context}", "integration_id": {want}}}`'
    )
    return Check("status-source", title, status, True, detail, fix)


def _org_pinning(facts: Facts) -> Check:
    b, context = facts.default, status_context(facts.default_branch)
    org_rules = [r for r in _rules_of_any(b) if r.get("ruleset_source_type") == "Organization"]
    pins_status = any(
        c.get("context") == context
        for r in org_rules
        if r.get("type") == "required_status_checks"
        for c in (r.get("parameters") or {}).get("required_status_checks") or []
    )
    pins_workflow = any(r.get("type") == "workflows" for r in org_rules)
    status = _decide(pins_status or pins_workflow, [b.rules])
    detail = (
        "an organisation ruleset requires the check"
        if pins_status
        else "an organisation ruleset requires a workflow"
        if pins_workflow
        else "no organisation ruleset pins it: a repository admin can remove the requirement"
        + _unknown_note(b.rules)
    )
    fix = (
        "Organization settings → Repository → Rulesets → New branch ruleset targeting this repository's "
        f"default branch → Require status checks to pass: `{context}` (or Require workflows to pass)"
    )
    return Check(
        "org-pinning", "An organisation ruleset pins the check", status, False, detail, fix
    )


# --- rendering (pure) -----------------------------------------------------------------------------------

ICON = {"ok": "✅", "missing": "❌", "unknown": "❔"}


@dataclass(frozen=True)
class Checklist:
    """The doctor's result: the facts and the checks decided from them, in every format."""

    facts: Facts
    found: tuple[Check, ...]

    def render(self, fmt: str) -> str:
        return {"text": text, "json": as_json, "markdown": markdown}[fmt](self.facts, self.found)

    def failed(self, strict: bool = False) -> bool:
        return failed(self.found, strict)


def checklist(facts: Facts) -> Checklist:
    return Checklist(facts, tuple(checks(facts)))


def failed(found: Iterable[Check], strict: bool = False) -> bool:
    """Exit 1 when a required item is missing (or, with `strict`, cannot be read)."""
    bad = ("missing", "unknown") if strict else ("missing",)
    return any(c.required and c.status in bad for c in found)


def text(facts: Facts, found: Sequence[Check]) -> str:
    lines = [f"gitops-flags doctor: {facts.repository} (default branch {facts.default_branch})", ""]
    for c in found:
        optional = "" if c.required else " (recommended)"
        lines.append(f"[{c.status:<7}] {c.title}{optional}")
        lines.append(f"          {render.plain(c.detail, 600)}")
        if c.status != "ok" and c.fix:
            lines.append(f"          fix: {render.plain(c.fix, 1200)}")
    lines += ["", _tally(found)]
    return "\n".join(lines)


def markdown(facts: Facts, found: Sequence[Check]) -> str:
    lines = [
        f"## gitops-flags doctor: {render.escape_md(facts.repository, 200)}",
        "",
        "| | setting | found | fix |",
        "| --- | --- | --- | --- |",
    ]
    for c in found:
        title = render.escape_md(c.title, 300) + ("" if c.required else " *(recommended)*")
        fix = render.escape_md(c.fix, 1200) if c.status != "ok" else ""
        lines.append(f"| {ICON[c.status]} | {title} | {render.escape_md(c.detail, 600)} | {fix} |")
    lines += ["", _tally(found), ""]
    return "\n".join(lines)


def as_json(facts: Facts, found: Sequence[Check]) -> str:
    data = {
        "repository": facts.repository,
        "default_branch": facts.default_branch,
        "checks": [asdict(c) for c in found],
        "missing_required": sum(1 for c in found if c.required and c.status == "missing"),
        "unknown": sum(1 for c in found if c.status == "unknown"),
    }
    return json.dumps(data, indent=2, ensure_ascii=False)


def _tally(found: Sequence[Check]) -> str:
    counts = {s: sum(1 for c in found if c.status == s) for s in ("ok", "missing", "unknown")}
    tail = ""
    if counts["unknown"]:
        tail = (
            " — unknown items need a token that may read them (repository Administration, Environments "
            "and Secrets read; GITHUB_TOKEN cannot)"
        )
    return f"{counts['ok']} ok, {counts['missing']} missing, {counts['unknown']} unknown{tail}"
