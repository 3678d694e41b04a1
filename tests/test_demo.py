"""The README's first command runs examples/demo.sh: it must work end to end, offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gitops_flags.flagd import served_state

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_demo_runs_the_whole_loop_offline(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "GITOPS_FLAGS_DEMO_DIR": str(tmp_path)}
    done = subprocess.run(["bash", str(ROOT / "examples" / "demo.sh")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    store = tmp_path / "store"
    state = json.loads((store / "state.json").read_text())
    production = json.loads((store / "production.flagd.json").read_text())["flags"]
    # The PR's rollout went through all five stages: everyone is served "on", no split left.
    autocomplete = state["rollouts"]["search_autocomplete"]["production"]
    assert (autocomplete["status"], autocomplete["percentage"]) == ("completed", 100)
    assert "fractional" not in json.dumps(production["search_autocomplete"].get("targeting", {}))
    # The failing health gate rolled new_checkout_flow back to 0%, and the next run left it there.
    checkout = state["rollouts"]["new_checkout_flow"]["production"]
    assert (checkout["status"], checkout["percentage"]) == ("rolled_back", 0)
    # The staging toggle of the PR is served.
    staging = json.loads((store / "staging.flagd.json").read_text())["flags"]
    assert served_state(staging["legacy_export"]) == "ENABLED"
    audit = [json.loads(line) for line in (store / "audit.jsonl").read_text().splitlines()]
    advanced = [r for r in audit if r.get("flag") == "search_autocomplete" and r.get("event") == "advanced"]
    assert sum(1 for r in advanced if r["environment"] == "production") == 3
    # Step 8: the FeatureFlag manifests carry what the store serves; the hand edit was reverted and audited.
    manifest = yaml.safe_load((tmp_path / "cluster-config" / "apps/flags/production.yaml").read_text())
    assert (manifest["kind"], manifest["metadata"]["namespace"]) == ("FeatureFlag", "prod")
    assert manifest["spec"]["flagSpec"]["flags"] == production
    assert [r["environment"] for r in audit if r.get("event") == "manifest_drift"] == ["production"]
