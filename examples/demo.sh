#!/usr/bin/env bash
# gitops-flags in a minute, offline, on the bundled example repository:
#   validate → plan a pull request → evaluate sample reviews → merge → apply to a flagd store → advance a
#   staged rollout with a simulated clock → status and audit → the same state as OpenFeature Operator
#   `FeatureFlag` manifests, and a hand edit to one reverted.
# Needs git and an installed `gitops-flags`. Leaves its work in $GITOPS_FLAGS_DEMO_DIR (default: a temp dir).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
work=${GITOPS_FLAGS_DEMO_DIR:-$(mktemp -d -t gitops-flags-demo.XXXXXX)}
repo=$work/repo
store=file:$work/store
manifests=$work/cluster-config   # stands in for the cluster-config repository Argo CD or Flux syncs
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com
export GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com
git() { command git -C "$repo" -c init.defaultBranch=main -c commit.gpgsign=false "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

rm -rf "$repo" "$work/store" "$work/status" "$manifests"
mkdir -p "$repo/.github" "$work/status/api"
cp -R "$here/flags" "$repo/flags"
cp "$here/.github/gitops-flags.yml" "$here/.github/CODEOWNERS" "$repo/.github/"
# One FeatureFlag resource per environment; production's goes to namespace prod (docs/manifests.md).
python3 - "$repo/.github/gitops-flags.yml" <<'PY'
import pathlib, sys
policy = pathlib.Path(sys.argv[1])
policy.write_text(policy.read_text().replace("  branch: flag-store\n", """  branch: flag-store
  manifests:
    repository: acme/cluster-config
    branch: main
    path: apps/flags/{environment}.yaml
    environments:
      production: {namespace: prod}
      staging: {namespace: staging}
""", 1))
PY

# new_checkout_flow's rollout has an HTTP health gate; serve its status page on this machine.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo '{"data": {"error_rate": 0.004}}' > "$work/status/api/checkout"
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/status" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sed -i.bak "s|https://status.acme.example/api/checkout|http://127.0.0.1:$port/api/checkout|" \
  "$repo/flags/checkout/new_checkout_flow.yaml" && rm "$repo/flags/checkout/new_checkout_flow.yaml.bak"
# Gates refuse this machine's addresses unless the policy allows them (docs/rollouts.md, "Gate rules").
sed -i.bak "s|  hosts: \[status.acme.example, prometheus.acme.example\]|  hosts: [127.0.0.1]\n  loopback: true|" \
  "$repo/.github/gitops-flags.yml" && rm "$repo/.github/gitops-flags.yml.bak"
git init -q
git add -A && git commit -qm "Adopt gitops-flags"

step "1. Validate the example repository"
run gitops-flags validate -C "$repo"

step "2. Apply today's flags to an empty flagd store (the adopting commit is the baseline)"
run gitops-flags apply -C "$repo" --store "$store" --init --manifests "$manifests" --no-verify-approvals \
  --now 2026-12-01T08:00:00Z

step "3. A pull request: roll search_autocomplete out in production, re-enable legacy_export in staging"
git switch -q -c alice/autocomplete
python3 - "$repo" <<'PY'
import pathlib, sys
repo = pathlib.Path(sys.argv[1])
ac = repo / "flags/search/search_autocomplete.yaml"
ac.write_text(ac.read_text().replace(
    "  production:\n    enabled: true\n",
    "  production:\n    enabled: true\n    rollout:\n      variant: \"on\"\n"
    "      stages: [5, 25, 50, 75, 100]\n      stage_delay: 2h\n"))
le = repo / "flags/legacy_export.yaml"
le.write_text(le.read_text().replace("  staging:\n    enabled: false", "  staging:\n    enabled: true", 1))
PY
git commit -qam "Roll out search autocomplete; legacy export back on in staging"
head=$(git rev-parse HEAD)
echo "What each change needs, judged by the policy and CODEOWNERS of main:"
run gitops-flags plan -C "$repo" --base main --head "$head" || true

step "4. Reviews arrive (sample PR snapshot: the author's own approval never counts)"
cat > "$work/pull.json" <<JSON
{
  "author": "alice",
  "labels": [],
  "reviews": [
    {"id": 1, "user": {"login": "alice", "type": "User"}, "state": "APPROVED", "commit_id": "$head"},
    {"id": 2, "user": {"login": "maria", "type": "User"}, "state": "APPROVED", "commit_id": "$head"},
    {"id": 3, "user": {"login": "quinn", "type": "User"}, "state": "APPROVED", "commit_id": "$head"},
    {"id": 4, "user": {"login": "sam", "type": "User"}, "state": "APPROVED", "commit_id": "$head"}
  ],
  "teams": {
    "acme/eng-managers": ["maria"],
    "acme/search": ["maria", "sam"],
    "acme/qa": ["quinn"],
    "acme/platform": ["sam"]
  }
}
JSON
run gitops-flags plan -C "$repo" --base main --head "$head" --pull "$work/pull.json"

step "5. Merge and apply (offline there is no GitHub to re-check the PR, so approvals are not re-verified)"
git switch -q main
git merge -q --no-ff -m "Merge pull request #1 from alice/autocomplete" alice/autocomplete
run gitops-flags apply -C "$repo" --store "$store" --manifests "$manifests" --no-verify-approvals \
  --now 2026-12-01T09:00:00Z

step "6. Scheduled runs advance rollouts, one stage per run once its delay has passed and the gate passes"
for now in 2026-12-01T11:05:00Z 2026-12-01T13:10:00Z; do
  run gitops-flags advance -C "$repo" --store "$store" --manifests "$manifests" --now "$now"
done
echo "new_checkout_flow's error rate jumps to 9%: its health gate fails and the rollout is rolled back to 0%"
echo '{"data": {"error_rate": 0.09}}' > "$work/status/api/checkout"
for now in 2026-12-01T15:15:00Z 2026-12-01T17:20:00Z; do
  run gitops-flags advance -C "$repo" --store "$store" --manifests "$manifests" --now "$now" \
    || echo "(exit $?: a gate failed)"
done

step "7. What is served now, and the audit trail"
run gitops-flags status -C "$repo" --store "$store" --now 2026-12-01T17:30:00Z
run gitops-flags audit search_autocomplete -C "$repo" --store "$store"
step "8. The same state as FeatureFlag manifests, for the OpenFeature Operator in every cluster"
echo "apply and advance wrote them beside the store (here to a directory; in Actions to acme/cluster-config):"
run head -n 8 "$manifests/apps/flags/production.yaml"
echo "Someone with push rights to the config repository switches the new checkout on for everyone:"
python3 - "$manifests/apps/flags/production.yaml" <<'PY'
import pathlib, sys
path = pathlib.Path(sys.argv[1])
old = '"new_checkout_flow": {"defaultVariant": "off"'
text = path.read_text()
assert text.count(old) == 1
path.write_text(text.replace(old, '"new_checkout_flow": {"defaultVariant": "on"'))
PY
run gitops-flags apply -C "$repo" --store "$store" --manifests "$manifests" --no-verify-approvals \
  --now 2026-12-01T17:35:00Z || echo "(exit $?: drift found, reported and reverted)"
run grep -o '"new_checkout_flow": {"defaultVariant": "[a-z]*"' "$manifests/apps/flags/production.yaml"

echo
echo "flagd can serve the store as is: flagd start --uri file:$work/store/production.flagd.json"
echo "Demo files: $work"
