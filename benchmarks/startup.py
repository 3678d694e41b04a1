"""Start-up: `gitops-flags validate` on the bundled example (this repository's own flags/ and policy), on a
repository without schemas (`gitops-flags init`'s starter: one boolean flag) and `gitops-flags --help`,
whole processes paired with `python -c pass` in the same rounds.

    python benchmarks/startup.py [--rounds 21] [--instructions]

Target (issue 15): validate on the bundled example ≤ 120 ms. The reference "libraries only" imports what
validating cannot do without (click, PyYAML, pydantic's BaseModel, jsonschema) and nothing of ours: the
part of the start-up that this project's code does not decide; without jsonschema, the same for a
repository without schemas, which validates without loading it. `--instructions` adds each command's
instruction count (callgrind), which the machine's load does not move.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import PYTHON, instructions, load_average, median, paired

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = "import click, yaml, jsonschema\nfrom pydantic import BaseModel"
WITHOUT_JSONSCHEMA = "import click, yaml\nfrom pydantic import BaseModel"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--instructions", action="store_true", help="also count instructions (callgrind)")
    args = parser.parse_args()
    cli = [PYTHON, "-m", "gitops_flags"]
    starter = Path(tempfile.mkdtemp(prefix="gitops-flags-starter-"))
    # In a child process: a child's peak RSS counts the parent's pages it shares until it execs, so this
    # process imports nothing of ours.
    subprocess.run([*cli, "init", str(starter)], check=True, stdout=subprocess.DEVNULL)
    commands = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "libraries only (click, yaml, pydantic, jsonschema)": [PYTHON, "-c", LIBRARIES],
        "libraries without jsonschema": [PYTHON, "-c", WITHOUT_JSONSCHEMA],
        "gitops-flags --help": [*cli, "--help"],
        "gitops-flags validate (bundled example)": [*cli, "validate", "-C", str(ROOT)],
        "gitops-flags validate (no schemas: init's starter)": [*cli, "validate", "-C", str(starter)],
    }
    try:
        results = paired(commands, args.rounds)
        print(f"median of {args.rounds} paired rounds; {load_average()}")
        for name, samples in results.items():
            wall, cpu = median(samples) * 1000, median(samples, "cpu") * 1000
            text = (f"{name:52} {wall:6.0f} ms wall {cpu:6.0f} ms CPU {median(samples, 'rss_mb'):5.0f} MB "
                    "peak RSS")
            if args.instructions:
                text += f" {instructions(commands[name]).total / 1e6:6.0f} M instructions"
            print(text, flush=True)
    finally:
        shutil.rmtree(starter, ignore_errors=True)


if __name__ == "__main__":
    main()
