"""`gitops-flags validate` on generated repositories, whole processes paired with their references.

    python benchmarks/validate.py [--sizes 1000,10000,50000] [--rounds 5] [--check-jsonschema PATH]
                                  [--instructions]
    python benchmarks/validate.py --crossover [--rounds 9] [--instructions] [--crossover-sizes 100,200]

For each size it writes that many realistic ~600-byte flag files (booleans, strings, numbers and
schema-checked objects, with targeting rules and rollouts, spread over team folders), two schemas and a
policy, then runs in every round, one after the other (so that load from other processes hits them alike):

- `python -c pass` (the interpreter's own start);
- floor: a process that reads every flag file and parses it with `yaml.load(..., Loader=CSafeLoader)`
  (no positions, no checks: the least any YAML validator must do);
- the floor's work split over one forked process per core: the speed-up this machine gives perfectly
  parallel work, the reference for validate's speed-up over `--jobs 1`;
- `gitops-flags validate` (one worker per core), `validate --jobs 1`, and `validate flags` (paths given);
- check-jsonschema (what users pick instead) with the flag JSON Schema, when installed, at 10,000 only.

Figures are medians over the rounds; ratios are medians of the per-round ratios. Peak RSS is the largest
process's (the parent or one worker). `--crossover` compares `--jobs 1` and `--jobs 2` on small
repositories, which sets `parallel.SERIAL_BELOW`; with `--instructions` it also counts instructions under
callgrind, which the load of a shared machine does not move.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import PYTHON, Sample, instructions, load_average, median, paired, ratio_median

ROOT = Path(__file__).resolve().parents[1]

POLICY = """\
version: 1
flags_dir: flags
environments: [staging, production]
roles:
  manager: ["@acme/eng-managers"]
  qa: ["@acme/qa"]
  senior: ["@acme/staff-engineers"]
  compliance: ["@acme/compliance"]
  reviewer: ["@acme/schema-reviewers"]
rules:
  - {match: {kind: governance}, workflow: governance}
  - {match: {kind: schema}, workflow: schema_approval}
  - {match: {kind: flag, environment: production}, workflow: flag_approval}
  - {match: {kind: flag}, workflow: codeowner_review}
workflows:
  flag_approval:
    steps:
      - {id: manager, role: manager, codeowner: true}
      - {id: qa, role: qa, after: [manager], when: {change_type: [create, update, rollout]}}
  codeowner_review:
    steps: [{id: owner, role: codeowner}]
  schema_approval:
    steps:
      - {id: review1, role: reviewer, approvals: 2}
      - {id: review2, role: senior, after: [review1]}
  governance:
    steps: [{id: senior, role: senior}, {id: compliance, role: compliance}]
"""

SCHEMAS = {
    "checkout_config": """\
name: checkout_config
version: 3
description: Configuration object served by object-typed checkout flags
schema:
  type: object
  additionalProperties: false
  required: [provider, retries]
  properties:
    provider: {enum: [stripe, adyen]}
    retries: {type: integer, minimum: 0, maximum: 10}
    timeout_ms: {type: integer, minimum: 1000}
""",
    "rate_limits": """\
name: rate_limits
version: 1
schema:
  type: object
  required: [requests_per_minute]
  properties:
    requests_per_minute: {type: integer, minimum: 1}
    burst: {type: integer, minimum: 1}
""",
}

TEAMS = ["checkout", "search", "growth", "platform", "mobile", "payments", "web", "data"]

FLOOR = """\
import os, sys, yaml
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs if f.endswith(".yaml"))
for path in paths:
    with open(path, "rb") as f:
        yaml.load(f.read(), Loader=yaml.CSafeLoader)
"""


# The floor's work split over `n` processes (forked after the import and the listing, as validate's workers
# are): what this machine gives perfectly parallel work with no serial part, the reference for the speed-up.
FLOOR_SPLIT = """\
import os, sys, yaml
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs if f.endswith(".yaml"))
n = int(sys.argv[2])
k = next((k for k in range(1, n) if os.fork() == 0), 0)
for path in paths[k::n]:
    with open(path, "rb") as f:
        yaml.load(f.read(), Loader=yaml.CSafeLoader)
if k:
    os._exit(0)
for _ in range(n - 1):
    os.wait()
"""


def flag_text(i: int, rng: random.Random) -> tuple[str, str]:
    """(folder, text) of one realistic flag, about 600 bytes."""
    team = TEAMS[i % len(TEAMS)]
    key = f"{team}_feature_{i:05d}"
    kind = i % 10
    head = (f"# yaml-language-server: $schema=../../schemas/flag.json\nkey: {key}\n"
            f"name: {team.title()} feature {i}\n"
            f"description: Generated flag number {i} for the {team} team's experiments.\n"
            f'owner: "@acme/{team}"\ntags: [{team}, generated, q{1 + i % 4}]\n')
    rule = ("    rules:\n      - name: staff\n        when: {attribute: email, operator: ends_with, "
            'value: "@acme.com"}\n        variant: %s\n')
    if kind < 6:
        body = ('type: boolean\nvariants:\n  "on": true\n  "off": false\ndefault_variant: "off"\n'
                'environments:\n  staging:\n    enabled: true\n    default_variant: "on"\n'
                "  production:\n    enabled: true\n" + rule % '"on"')
        if kind < 2:
            body += ('    rollout:\n      variant: "on"\n      stages: [5, 25, 50, 75, 100]\n'
                     "      stage_delay: 2h\n      start_at: 2026-11-20T09:00:00Z\n")
    elif kind < 8:
        body = ("type: string\nvariants:\n  control: baseline\n  treatment: variant-b\n  holdout: none\n"
                "default_variant: control\nenvironments:\n  staging:\n    enabled: true\n"
                "    default_variant: treatment\n  production:\n    enabled: true\n" + rule % "treatment"
                + "      - name: markets\n        when: {attribute: country, operator: in, "
                "value: [DE, FR, NL]}\n        variant: holdout\n")
    elif kind < 9:
        body = (f"type: number\nvariants:\n  low: {rng.randint(1, 9)}\n  medium: {rng.randint(10, 49)}\n"
                f"  high: {rng.randint(50, 99)}\ndefault_variant: medium\nenvironments:\n  staging:\n"
                "    enabled: true\n    default_variant: high\n  production:\n    enabled: true\n"
                + rule % "high")
    else:
        body = ("type: object\nschema: checkout_config\nvariants:\n"
                "  stripe: {provider: stripe, retries: 3, timeout_ms: 8000}\n"
                "  adyen: {provider: adyen, retries: 2, timeout_ms: 6000}\n"
                "default_variant: stripe\nenvironments:\n  staging:\n    enabled: true\n"
                "    default_variant: adyen\n  production:\n    enabled: false\n")
    return team, head + body


def generate(root: Path, n: int) -> int:
    """Write a repository of `n` flags under `root`; the flag files' total size in bytes."""
    rng = random.Random(42)
    (root / ".github").mkdir(parents=True)
    (root / ".github" / "gitops-flags.yml").write_text(POLICY)
    (root / "flags" / "schemas").mkdir(parents=True)
    for name, text in SCHEMAS.items():
        (root / "flags" / "schemas" / f"{name}.yaml").write_text(text)
    total = 0
    for i in range(n):
        team, text = flag_text(i, rng)
        folder = root / "flags" / team
        folder.mkdir(exist_ok=True)
        key = text.split("key: ", 1)[1].split("\n", 1)[0]
        (folder / f"{key}.yaml").write_text(text)
        total += len(text.encode())
    return total


def cli(root: Path, *args: str) -> list[str]:
    return [PYTHON, "-m", "gitops_flags", "validate", "--repo", str(root), *args]


def line(name: str, samples: list[Sample], reference: list[Sample] | None = None, ref_name: str = "") -> str:
    text = (f"  {name:34} {median(samples):7.3f} s wall {median(samples, 'cpu'):7.3f} s CPU "
            f"{median(samples, 'rss_mb'):5.0f} MB")
    if reference is not None:
        text += f"   {ratio_median(samples, reference):5.2f}x {ref_name}"
    return text


def measure(n: int, rounds: int, check_jsonschema: str | None, count: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="gitops-flags-bench-"))
    cores = len(os.sched_getaffinity(0))
    try:
        size = generate(tmp, n)
        commands = {
            "python -c pass": [PYTHON, "-c", "pass"],
            "floor (read + CSafeLoader)": [PYTHON, "-c", FLOOR, str(tmp / "flags")],
            "floor on every core": [PYTHON, "-c", FLOOR_SPLIT, str(tmp / "flags"), str(cores)],
            "validate": cli(tmp),
            "validate --jobs 1": cli(tmp, "--jobs", "1"),
            "validate flags (paths given)": cli(tmp, str(tmp / "flags")),
        }
        if check_jsonschema and n == 10_000:
            files = sorted(str(p) for p in (tmp / "flags").rglob("*.yaml") if p.parent.name != "schemas")
            commands["check-jsonschema"] = [check_jsonschema, "--schemafile",
                                            str(ROOT / "gitops_flags" / "jsonschema" / "flag.json"), *files]
        r = paired(commands, rounds, cwd=tmp)
        counted = [instructions(cli(tmp, *args), cwd=tmp) for args in (("--jobs", "1"), ())] if count else []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    floor, full, serial = r["floor (read + CSafeLoader)"], r["validate"], r["validate --jobs 1"]
    print(f"\n{n} flags ({size / n:.0f} bytes each on average), median of {rounds} paired rounds; "
          f"{load_average()}")
    print(line("python -c pass", r["python -c pass"]))
    print(line("floor (read + CSafeLoader)", floor))
    print(line("validate", full, floor, "the floor"))
    print(line("validate --jobs 1", serial, floor, "the floor"))
    print(line("validate flags (paths given)", r["validate flags (paths given)"], full, "plain validate"))
    if "check-jsonschema" in r:
        print(line("check-jsonschema", r["check-jsonschema"], floor, "the floor"))
        print(f"  {'':34} validate is {ratio_median(r['check-jsonschema'], full):.1f}x faster "
              "than check-jsonschema")
    split = r["floor on every core"]
    print(line(f"floor on every core ({cores} processes)", split, floor, "the floor"))
    speedup, ceiling = ratio_median(serial, full), ratio_median(floor, split)
    print(f"  CPU use of validate: {median(full, 'cpu') / median(full):.2f} cores busy; speed-up over "
          f"--jobs 1: {speedup:.2f}x ({speedup / cores:.0%} of linear on {cores} cores); the floor's own "
          f"speed-up on {cores} processes: {ceiling:.2f}x (what this machine gives work with no serial "
          f"part); validate gets {speedup / ceiling:.0%} of that")
    if counted:
        one, every = counted
        gain = one.total / every.critical
        print(f"  instructions: --jobs 1 {one.total / 1e6:.0f} M; default {every.total / 1e6:.0f} M in all, "
              f"critical path (parent + busiest worker) {every.critical / 1e6:.0f} M: speed-up "
              f"{gain:.2f}x on idle cores ({gain / cores:.0%} of linear)")


def crossover(rounds: int, sizes: Sequence[int], count: bool) -> None:
    """--jobs 1 against --jobs 2 on small repositories: paired wall time, and (with `count`) instructions,
    which the machine's load does not move: the serial run's against the parallel run's critical path (the
    parent plus its busiest worker: its wall time on two idle cores, fork's kernel time aside)."""
    print(f"crossover: whole-process validate --jobs 1 vs --jobs 2, median of {rounds} paired rounds; "
          f"{load_average()}")
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="gitops-flags-bench-"))
        try:
            generate(tmp, n)
            r = paired({"1": cli(tmp, "--jobs", "1"), "2": cli(tmp, "--jobs", "2")}, rounds, cwd=tmp)
            counted = [instructions(cli(tmp, "--jobs", j), cwd=tmp) for j in ("1", "2")] if count else []
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        one, two = median(r["1"]) * 1000, median(r["2"]) * 1000
        ratio = ratio_median(r["2"], r["1"])
        text = f"  {n:5} flags: --jobs 1 {one:6.0f} ms, --jobs 2 {two:6.0f} ms ({ratio:.2f}x)"
        if counted:
            serial, parallel = counted
            text += (f"; instructions: --jobs 1 {serial.total / 1e6:6.0f} M, --jobs 2 critical path "
                     f"{parallel.critical / 1e6:6.0f} M ({parallel.critical / serial.total:.2f}x), "
                     f"all processes {parallel.total / 1e6:6.0f} M ({parallel.total / serial.total:.2f}x)")
        print(text, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--check-jsonschema", default=shutil.which("check-jsonschema"),
                        help="the check-jsonschema command (default: from PATH; skipped when absent)")
    parser.add_argument("--crossover", action="store_true")
    parser.add_argument("--crossover-sizes", default="100,200,400,800,1600")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions under callgrind (slow, load-free): --jobs 1 against "
                        "the default's critical path, or with --crossover at each crossover size")
    args = parser.parse_args()
    if args.crossover:
        crossover(args.rounds, [int(s) for s in args.crossover_sizes.split(",")], args.instructions)
        return
    for n in (int(s) for s in args.sizes.split(",")):
        measure(n, args.rounds, args.check_jsonschema, args.instructions)


if __name__ == "__main__":
    main()
