"""Properties of the approval evaluator that must hold for any policy, change set and review history."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_flags.approvals import evaluate
from gitops_flags.changes import Change
from gitops_flags.codeowners import CodeOwners, parse
from gitops_flags.model import ChangeType, Policy
from gitops_flags.snapshot import DECISIVE_STATES, PullSnapshot, Review, TeamLookup

HEAD, OLD = "h" * 40, "o" * 40
USERS = ["u1", "u2", "u3", "u4", "u5"]
AUTHOR = "author"
BOT = "helper[bot]"
ENTRIES = ["u1", "@u2", "u3", "U4", "@org/t1", "@org/t2", "@org/t3"]
CHANGE_TYPES: tuple[ChangeType, ...] = ("update", "toggle")
STATES = ["APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING"]
CONTENTS = {(OLD, "flags/a.yaml"): b"1", (HEAD, "flags/a.yaml"): b"1", (OLD, "flags/b.yaml"): b"1",
            (HEAD, "flags/b.yaml"): b"2"}


def _read(sha: str, path: str) -> bytes | None:
    return CONTENTS.get((sha, path))


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    roles = {f"r{i}": draw(st.lists(st.sampled_from(ENTRIES), min_size=1, max_size=4, unique=True))
             for i in range(3)}
    # Role entries may name the author and the bot, so that bans are what stops them.
    roles["r0"] = [*roles["r0"], AUTHOR, BOT]
    steps: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 4))):
        step: dict[str, Any] = {
            "id": f"s{i}",
            "role": draw(st.sampled_from([*roles, "codeowner"])),
            "approvals": draw(st.integers(1, 3)),
            "codeowner": draw(st.booleans()),
        }
        if i:
            earlier = st.sampled_from([f"s{j}" for j in range(i)])
            step["after"] = draw(st.lists(earlier, unique=True, max_size=2))
        step["when"] = draw(st.sampled_from([None, {"label": "extra"}, {"not": {"change_type": "toggle"}}]))
        steps.append(step)
    options = {
        "distinct_approvers": draw(st.booleans()),
        "stale_approvals": draw(st.sampled_from(["content", "commit", "keep"])),
        "count_bots": draw(st.booleans()),
    }
    return Policy.model_validate(
        {
            "environments": ["production"],
            "roles": roles,
            "rules": [{"match": {"kind": "flag"}, "workflow": "w"}],
            "workflows": {"w": {"steps": steps}},
            "options": options,
        }
    )


@st.composite
def codeowners(draw: st.DrawFn) -> CodeOwners:
    owners = draw(st.lists(st.sampled_from(["@u1", "@u3", "@u5", "@org/t1", "@org/t2", "x@example.com"]),
                           max_size=3, unique=True))
    return parse(f"flags/ {' '.join(owners)}\n")


@st.composite
def teams(draw: st.DrawFn) -> dict[str, TeamLookup]:
    found: dict[str, TeamLookup] = {}
    for slug in ("org/t1", "org/t2", "org/t3"):
        if draw(st.booleans()):
            found[slug] = TeamLookup(frozenset(draw(st.lists(st.sampled_from([*USERS, AUTHOR]), max_size=3))))
        else:
            found[slug] = TeamLookup(None, "no permission")
    return found


@st.composite
def review_lists(draw: st.DrawFn) -> list[Review]:
    count = draw(st.integers(0, 12))
    ids = draw(st.lists(st.integers(1, 10_000), min_size=count, max_size=count, unique=True))
    reviews = []
    for review_id in sorted(ids):
        user = draw(st.sampled_from([*USERS, "U1", AUTHOR, BOT, ""]))
        reviews.append(
            Review(
                id=review_id,
                user=user,
                state=draw(st.sampled_from(STATES)),
                commit_id=draw(st.sampled_from([HEAD, HEAD, OLD, None])),
                is_bot=user == BOT,
            )
        )
    return reviews


@st.composite
def change_lists(draw: st.DrawFn) -> list[Change]:
    found = []
    for path in draw(st.lists(st.sampled_from(["flags/a.yaml", "flags/b.yaml"]), min_size=1, max_size=2)):
        change_type = draw(st.sampled_from(CHANGE_TYPES))
        found.append(Change("flag", path[6:7], path, change_type, "...", "production", files=(path,)))
    return found


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Policy, CodeOwners, list[Change], PullSnapshot]:
    pull = PullSnapshot(
        author=draw(st.sampled_from([AUTHOR, "Author"])),
        head_sha=HEAD,
        labels=frozenset(draw(st.lists(st.sampled_from(["extra", "other"]), max_size=2))),
        reviews=tuple(draw(review_lists())),
        teams=draw(teams()),
        read=_read,
    )
    return draw(policies()), draw(codeowners()), draw(change_lists()), pull


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.sampled_from([*USERS, "U3", AUTHOR, BOT]))
def test_adding_an_approval_never_unsatisfies_a_step(
    scenario: tuple[Policy, CodeOwners, list[Change], PullSnapshot], approver: str
) -> None:
    policy, owners, changes, pull = scenario
    before = evaluate(changes, policy, owners, pull)
    newest = max((r.id for r in pull.reviews), default=0) + 1
    added = Review(newest, approver, "APPROVED", HEAD, is_bot=approver == BOT)
    after = evaluate(changes, policy, owners, replace(pull, reviews=(*pull.reviews, added)))
    for old, new in zip(before.changes, after.changes, strict=True):
        for old_step, new_step in zip(old.steps, new.steps, strict=True):
            if old_step.state == "satisfied":
                assert new_step.state == "satisfied", (old_step, new_step)
        if old.verdict == "approved":
            assert new.verdict == "approved"


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.data())
def test_the_authors_own_reviews_change_nothing(
    scenario: tuple[Policy, CodeOwners, list[Change], PullSnapshot], data: st.DataObject
) -> None:
    policy, owners, changes, pull = scenario
    policy = policy.model_copy(update={"options": policy.options.model_copy(update={"allow_author": False})})
    others = tuple(r for r in pull.reviews if r.user.lower() != AUTHOR)
    base = evaluate(changes, policy, owners, replace(pull, reviews=others))
    extra = data.draw(st.lists(st.builds(
        Review,
        id=st.integers(20_000, 30_000),
        user=st.sampled_from([AUTHOR, "AUTHOR", "Author"]),
        state=st.sampled_from(STATES),
        commit_id=st.sampled_from([HEAD, OLD, None]),
    ), max_size=4, unique_by=lambda r: r.id))
    mixed = data.draw(st.permutations([*others, *extra]))
    assert evaluate(changes, policy, owners, replace(pull, reviews=tuple(mixed))) == base


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.data())
def test_only_each_users_latest_decisive_review_matters(
    scenario: tuple[Policy, CodeOwners, list[Change], PullSnapshot], data: st.DataObject
) -> None:
    policy, owners, changes, pull = scenario
    base = evaluate(changes, policy, owners, pull)
    shuffled = data.draw(st.permutations(pull.reviews))
    assert evaluate(changes, policy, owners, replace(pull, reviews=tuple(shuffled))) == base
    latest: dict[str, Review] = {}
    for review in sorted(pull.reviews, key=lambda r: r.id):
        if review.state in DECISIVE_STATES:
            latest[review.user.lower()] = review
    assert evaluate(changes, policy, owners, replace(pull, reviews=tuple(latest.values()))) == base


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_evaluation_is_deterministic(scenario: tuple[Policy, CodeOwners, list[Change], PullSnapshot]) -> None:
    policy, owners, changes, pull = scenario
    first = evaluate(changes, policy, owners, pull)
    assert evaluate(copy.deepcopy(changes), policy, owners, pull) == first
    assert evaluate(list(changes), policy.model_copy(deep=True), owners, pull).to_json() == first.to_json()
