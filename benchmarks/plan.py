"""Planning scales with the change, not with the repository.

Builds a git repository of 10,000 flags (and a few schemas) in a temporary directory, adds a commit that
changes 5 flags, then times `plan` (read base policy + CODEOWNERS from git, diff the changed files,
evaluate) against a full validation of the head working tree (`validate.validate_tree`).
Target: plan ≤ 10% of full validation.

    python benchmarks/plan.py [--flags 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gitops_flags import validate
from gitops_flags.commands import init
from gitops_flags.commands import plan as plan_command
from gitops_flags.tree import DirTree

SCHEMA = """\
name: {name}
version: 1
schema:
  type: object
  required: [limit]
  properties: {{limit: {{type: integer, minimum: 0}}, burst: {{type: integer}}}}
"""


def flag_yaml(i: int, production: bool = False) -> str:
    if i % 10 == 0:  # every tenth flag is an object flag using a schema
        return (
            f"key: flag_{i:05d}\ndescription: Object flag {i}\ntype: object\nschema: limits_{i % 5}\n"
            "variants:\n  small: {limit: 10}\n  large: {limit: 1000, burst: 50}\ndefault_variant: small\n"
            "environments:\n  staging: {enabled: true, default_variant: large}\n"
            f"  production: {{enabled: {str(production).lower()}}}\n"
        )
    return (
        f"key: flag_{i:05d}\ndescription: Flag {i}\nowner: '@your-org/team-{i % 50}'\n"
        "tags: [bench]\n"
        'type: boolean\nvariants: {"on": true, "off": false}\ndefault_variant: "off"\n'
        "environments:\n  staging:\n    enabled: true\n    default_variant: \"on\"\n"
        f"  production:\n    enabled: {str(production).lower()}\n"
        "    rules:\n      - name: staff\n        variant: \"on\"\n"
        "        when: {attribute: email, operator: ends_with, value: '@acme.com'}\n"
    )


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def build(root: Path, count: int) -> tuple[str, str]:
    git(root, "init", "-q", "-b", "main")
    for dest, content in init.plan_files().items():
        path = root / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (root / "flags/example_flag.yaml").unlink()
    for n in range(5):
        (root / f"flags/schemas/limits_{n}.yaml").write_text(SCHEMA.format(name=f"limits_{n}"))
    for i in range(count):
        folder = root / f"flags/team-{i % 50}"
        folder.mkdir(exist_ok=True)
        (folder / f"flag_{i:05d}.yaml").write_text(flag_yaml(i))
    env = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    git(root, "add", "-A")
    git(root, *env, "commit", "-q", "-m", "10,000 flags")
    base = git(root, "rev-parse", "HEAD")
    for i in (1, 2, 3, 4, 10):  # 5 flags, one of them an object flag
        (root / f"flags/team-{i % 50}/flag_{i:05d}.yaml").write_text(flag_yaml(i, production=True))
    git(root, "add", "-A")
    git(root, *env, "commit", "-q", "-m", "enable 5 flags in production")
    return base, git(root, "rev-parse", "HEAD")


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        base, head = build(root, args.flags)
        print(f"built a repository of {args.flags} flags in {time.perf_counter() - start:.1f}s")

        evaluation = plan_command.plan(root, base, head, None)
        assert evaluation is not None
        flags = sum(c.change.kind == "flag" for c in evaluation.changes)
        errors = [p for p in evaluation.problems if p.severity == "error"]
        print(f"plan: {len(evaluation.changes)} changes ({flags} flag changes), "
              f"verdict {evaluation.verdict}, {len(errors)} errors")
        policy, _ = validate.read_policy(DirTree(root))
        full = validate.validate_tree(DirTree(root), policy)
        print(f"full validation: {len(full.flags)} flags, {len(full.problems)} problems")

        plan_s = best(lambda: plan_command.plan(root, base, head, None), args.repeat)
        full_s = best(lambda: validate.validate_tree(DirTree(root), policy), max(1, args.repeat - 1))
    ratio = plan_s / full_s
    print(f"plan (5 changed flags):   {plan_s * 1000:8.1f} ms")
    print(f"full validation (head):   {full_s * 1000:8.1f} ms")
    print(f"ratio:                    {ratio:8.1%}   (target ≤ 10%)")
    return 0 if ratio <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
