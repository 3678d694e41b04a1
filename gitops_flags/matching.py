"""Assigning approvers to steps when one person may fill at most one step: maximum bipartite matching.

Each step asks for N approvals, so it contributes N identical slots; a person can fill a slot of any
step they are eligible for. Slots are filled one at a time in a fixed order (steps in workflow order,
people in sorted order) by augmenting paths (Kuhn's algorithm). The result is a maximum matching, and
the set of filled slots is the greedy one for that order: a slot is filled exactly when it can be,
together with every earlier filled slot. Two consequences the evaluator relies on:

- a person holding two roles is moved to the step only they can fill whenever that lets both steps be
  filled ("not spent on the wrong step");
- adding a person never empties a slot that was filled (filled slots only grow), so a new approval
  never turns a satisfied step unsatisfied.

The sizes here are tiny (a handful of steps, the PR's reviewers), so the simple O(slots × edges)
algorithm is plenty.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Demand:
    step: str
    count: int  # approvals needed
    people: Collection[str]  # who may fill it


def assign(demands: Sequence[Demand]) -> dict[str, tuple[str, ...]]:
    """step → the people assigned to it (sorted), for every step in `demands`."""
    slots: list[tuple[str, list[str]]] = []
    for demand in demands:
        people = sorted(set(demand.people))
        # A step cannot fill more slots than it has candidates; the extra slots would stay empty anyway
        # and leaving them out keeps the work bounded by the number of reviewers.
        slots.extend((demand.step, people) for _ in range(min(demand.count, len(people))))
    holder: dict[str, int] = {}  # person → slot index
    filled: dict[int, str] = {}  # slot index → person
    for index in range(len(slots)):
        _augment(index, slots, holder, filled)
    result: dict[str, list[str]] = {d.step: [] for d in demands}
    for index, person in filled.items():
        result[slots[index][0]].append(person)
    return {step: tuple(sorted(people)) for step, people in result.items()}


def _augment(
    start: int, slots: list[tuple[str, list[str]]], holder: dict[str, int], filled: dict[int, str]
) -> bool:
    """Fill slot `start` along an augmenting path, found by an iterative depth-first search."""
    reached_from: dict[str, int] = {}  # person → the slot the search reached them from
    stack: list[tuple[int, Iterator[str]]] = [(start, iter(slots[start][1]))]
    while stack:
        slot, candidates = stack[-1]
        for person in candidates:
            if person in reached_from:
                continue
            reached_from[person] = slot
            if person not in holder:
                _flip(person, start, reached_from, holder, filled)
                return True
            other = holder[person]
            stack.append((other, iter(slots[other][1])))
            break
        else:
            stack.pop()
    return False


def _flip(person: str, start: int, reached_from: dict[str, int], holder: dict[str, int],
          filled: dict[int, str]) -> None:
    """Walk the path back from a free person to `start`, moving each person to the slot that reached them."""
    current: str | None = person
    while current is not None:
        slot = reached_from[current]
        previous = filled.get(slot)
        filled[slot] = current
        holder[current] = slot
        if slot == start:
            return
        current = previous
