"""Planning costs in proportion to the change, not the repository: whole processes, paired.

For each size it builds a git repository of that many flags (every tenth an object flag using one of five
schemas), adds a commit that changes 5 flags (one of them an object flag) and, on a branch from the same
base, one that changes 5 boolean flags, then runs in every round, one after the other: `python -c pass`,
`gitops-flags plan --base B --head H` for each commit and `gitops-flags validate` of the first commit's
working tree (the whole-process reference). Figures are medians; ratios are medians of per-round ratios.
A plan without an object flag or schema loads no jsonschema (~70 ms of its start-up).

Targets (issue 15): plan ≤ 10% of whole-process validate; plan at 1k / 10k / 50k flags within 1.5x of
each other.

    python benchmarks/plan.py [--sizes 1000,10000,50000] [--rounds 5] [--instructions]

`--instructions` also counts plan's instructions (callgrind; its git processes included), which the
machine's load does not move, against those of importing what plan imports.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import PYTHON, instructions, load_average, median, paired, ratio_median

from gitops_flags.commands import init
from gitops_flags.commands import plan as plan_command

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


def build(root: Path, count: int) -> tuple[str, str, str]:
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
    head = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "-b", "booleans", base)
    for i in (1, 2, 3, 4, 5):  # 5 boolean flags
        (root / f"flags/team-{i % 50}/flag_{i:05d}.yaml").write_text(flag_yaml(i, production=True))
    git(root, *env, "commit", "-q", "-am", "enable 5 boolean flags in production")
    booleans = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "main")
    return base, head, booleans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="also count instructions (callgrind)")
    args = parser.parse_args()
    counts: dict[int, int] = {}
    imports = [PYTHON, "-c", "import gitops_flags.cli, gitops_flags.commands.plan"]
    plans: dict[int, float] = {}
    ratios: dict[int, float] = {}
    for n in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            start = time.perf_counter()
            base, head, booleans = build(root, n)
            built = time.perf_counter() - start
            evaluation = plan_command.plan(root, base, head, None).evaluation
            assert evaluation is not None
            flags = sum(c.change.kind == "flag" for c in evaluation.changes)
            cli = [PYTHON, "-m", "gitops_flags"]
            r = paired({
                "python -c pass": [PYTHON, "-c", "pass"],
                "plan": [*cli, "plan", "-C", str(root), "--base", base, "--head", head],
                "plan, 5 booleans": [*cli, "plan", "-C", str(root), "--base", base, "--head", booleans],
                "validate": [*cli, "validate", "-C", str(root)],
            }, args.rounds, cwd=root)
            if args.instructions:
                counted = instructions([*cli, "plan", "-C", str(root), "--base", base, "--head", head])
                counts[n] = counted.total
        plans[n], ratios[n] = median(r["plan"]), ratio_median(r["plan"], r["validate"])
        print(f"\n{n} flags (built in {built:.0f} s), a commit changing 5 of them ({len(evaluation.changes)} "
              f"changes, {flags} flag changes); median of {args.rounds} paired rounds; {load_average()}")
        for name, samples in r.items():
            wall, cpu = median(samples) * 1000, median(samples, "cpu") * 1000
            print(f"  {name:16} {wall:7.0f} ms wall {cpu:7.0f} ms CPU")
        print(f"  plan / validate: {ratios[n]:.1%} (target ≤ 10%); plan of 5 booleans / validate: "
              f"{ratio_median(r['plan, 5 booleans'], r['validate']):.1%}")
        if n in counts:
            print(f"  plan: {counts[n] / 1e6:.0f} M instructions, its git processes included")
    spread = max(plans.values()) / min(plans.values())
    print(f"\nplan across sizes: {', '.join(f'{n}: {t * 1000:.0f} ms' for n, t in plans.items())}; "
          f"largest / smallest {spread:.2f}x (target ≤ 1.5x)")
    if counts:
        base = instructions(imports).total
        print(f"plan's instructions: {', '.join(f'{n}: {c / 1e6:.0f} M' for n, c in counts.items())}; "
              f"largest / smallest {max(counts.values()) / min(counts.values()):.2f}x; importing what plan "
              f"imports: {base / 1e6:.0f} M")
    return 0


if __name__ == "__main__":
    sys.exit(main())
