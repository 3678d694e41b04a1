"""Full validation of N generated flag files against the bare C-loader parse of the same files (the floor).

    python benchmarks/validate.py [N]        (default 10000)

Writes N realistic ~600-byte flag files (booleans, strings, numbers and schema-checked objects, with
targeting rules and rollouts, spread over team folders), two schemas and a policy into a temporary
directory, then runs, each in a fresh Python process so that peak RSS is its own:

- floor: read every file and `yaml.load(raw, Loader=CSafeLoader)` (no positions, no checks);
- validate: `read_policy` + `validate_tree(DirTree(root), policy)`, everything `gitops-flags validate` does.

Both read the same files from the (warm) page cache. Target: validate ≤ 1.3 × floor, peak RSS ≤ 150 MB.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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

RUNS = 5
TEAMS = ["checkout", "search", "growth", "platform", "mobile", "payments", "web", "data"]


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


# --- the two measured runs, each in its own process ---------------------------------------------------


def run_floor(root: Path) -> dict[str, float]:
    import yaml

    paths = sorted(str(p) for p in (root / "flags").rglob("*.yaml"))
    start, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        with open(path, "rb") as f:
            yaml.load(f.read(), Loader=yaml.CSafeLoader)
    return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu, "files": len(paths)}


def run_validate(root: Path) -> dict[str, float]:
    start = time.perf_counter()
    from gitops_flags.tree import DirTree
    from gitops_flags.validate import read_policy, validate_tree

    imported, cpu = time.perf_counter(), time.process_time()
    tree = DirTree(root)
    policy, problems = read_policy(tree)
    result = validate_tree(tree, policy)
    end, cpu = time.perf_counter(), time.process_time() - cpu
    problems += result.problems
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        print("\n".join(f"{p.location()}: {p.message}" for p in errors[:5]), file=sys.stderr)
    return {"seconds": end - imported, "cpu": cpu, "import_seconds": imported - start,
            "files": len(result.checked), "problems": len(problems)}


def child(mode: str, root: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, f"--{mode}", str(root)], check=True, capture_output=True,
                         text=True)
    if out.stderr:
        print(out.stderr, file=sys.stderr, end="")
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in ("--floor", "--validate"):
        root = Path(sys.argv[2])
        result = run_floor(root) if sys.argv[1] == "--floor" else run_validate(root)
        result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        print(json.dumps(result))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory(prefix="gitops-flags-bench-") as tmp:
        root = Path(tmp)
        size = generate(root, n)
        child("floor", root)  # warm the page cache and the interpreter's own files
        floors, fulls = [], []
        for _ in range(RUNS):  # alternate, so that load from other processes hits both alike
            floors.append(child("floor", root))
            fulls.append(child("validate", root))
    floor = {k: min(r[k] for r in floors) for k in floors[0]}
    full = {k: min(r[k] for r in fulls) for k in fulls[0]}
    print(f"flags: {n} files, {size / n:.0f} bytes on average ({size / 1e6:.1f} MB); best of {RUNS} runs")
    print(f"floor (read + CSafeLoader parse): {floor['seconds']:.2f} s wall, {floor['cpu']:.2f} s CPU, "
          f"peak RSS {floor['max_rss_mb']:.0f} MB")
    print(f"validate_tree (full validation):  {full['seconds']:.2f} s wall, {full['cpu']:.2f} s CPU, "
          f"{full['files'] / full['seconds']:.0f} files/s, peak RSS {full['max_rss_mb']:.0f} MB, "
          f"{full['problems']:.0f} problems (+{full['import_seconds']:.2f} s imports)")
    wall, cpu = full["seconds"] / floor["seconds"], full["cpu"] / floor["cpu"]
    verdict = "met" if wall <= 1.3 and full["max_rss_mb"] <= 150 else "NOT met"
    print(f"ratio: {wall:.2f}x the floor wall time, {cpu:.2f}x its CPU time "
          f"(target ≤ 1.3x and ≤ 150 MB: {verdict})")


if __name__ == "__main__":
    main()
