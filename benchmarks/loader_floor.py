"""How close `loader.load_path` comes to a bare `yaml.load(text, Loader=CSafeLoader)`.

    python benchmarks/loader_floor.py [N]     (default 10000)

Writes N realistic flag files of about 600 bytes (the format in docs / DESIGN.md) to a temporary directory,
then times, best of 7 interleaved rounds:
  floor      read each file + yaml.load(text, Loader=CSafeLoader)
  load_path  gitops_flags.loader.load_path for each file (limits, checks, warnings, positions kept)
and the same two without the file reads (parse only: yaml.load vs load_bytes) to separate I/O from parsing.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from gitops_flags.loader import load_bytes, load_path

_TEMPLATE = """\
key: {key}
name: {name}
description: {description}
owner: "@acme/{team}"
tags: [{tags}]
type: boolean
variants: {{"on": true, "off": false}}
default_variant: "off"
environments:
  staging:
    enabled: true
    default_variant: "on"
  production:
    enabled: {enabled}
    default_variant: "off"
    rules:
      - name: staff
        when: {{attribute: email, operator: ends_with, value: "@acme.com"}}
        variant: "on"
    rollout:
      variant: "on"
      stages: [5, 25, 50, 75, 100]
      stage_delay: {delay}h
      start_at: 2026-12-{day:02d}T09:00:00Z
"""
_WORDS = ["checkout", "payment", "search", "cart", "profile", "banner", "export", "import", "sync", "cache"]


def make_flag(n: int, rng: random.Random) -> str:
    words = rng.sample(_WORDS, 3)
    key = f"{'_'.join(words)}_{n}"
    text = _TEMPLATE.format(
        key=key,
        name=" ".join(w.capitalize() for w in words),
        description=f"Enables the redesigned {words[0]} flow for {words[1]} users",
        team=rng.choice(_WORDS),
        tags=", ".join(rng.sample(["q1", "q2", "frontend", "backend", "mobile"], 2)),
        enabled=rng.choice(["true", "false"]),
        delay=rng.randint(1, 48),
        day=rng.randint(1, 28),
    )
    if len(text) < 590:
        text += "# " + "-" * (597 - len(text)) + "\n"  # pad to ~600 bytes
    return text


def best_of(base: Callable[[], None], mine: Callable[[], None], rounds: int = 7) -> tuple[float, float]:
    """Best time of each, the two interleaved round by round so that load from other processes hits both."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for fn, spent in ((base, times[0]), (mine, times[1])):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def main(argv: list[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 10_000
    rng = random.Random(42)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "flags").mkdir()
        rels = []
        for i in range(n):
            rel = f"flags/flag_{i}.yaml"
            (root / rel).write_text(make_flag(i, rng))
            rels.append(rel)
        paths = [root / rel for rel in rels]
        raws = [p.read_bytes() for p in paths]
        texts = [r.decode() for r in raws]
        for raw, text in zip(raws, texts, strict=True):  # both read the files the same way
            assert load_bytes(raw, "x").data == yaml.load(text, Loader=yaml.CSafeLoader)

        def floor() -> None:
            for p in paths:
                yaml.load(p.read_text(), Loader=yaml.CSafeLoader)

        def ours() -> None:
            for rel in rels:
                load_path(root, rel)

        def floor_parse() -> None:
            for t in texts:
                yaml.load(t, Loader=yaml.CSafeLoader)

        def ours_parse() -> None:
            for r in raws:
                load_bytes(r, "flags/x.yaml")

        avg = sum(map(len, raws)) / n
        print(f"{n} flag files, {avg:.0f} bytes on average, libyaml {yaml.__with_libyaml__}")
        for label, base, mine in (("with file reads", floor, ours), ("parse only", floor_parse, ours_parse)):
            f, o = best_of(base, mine)
            print(f"{label:16} floor {f:.3f}s  loader {o:.3f}s  ratio {o / f:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
