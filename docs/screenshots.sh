#!/usr/bin/env bash
# The pictures in README.md and docs/walkthrough.md, made by the real tool on the bundled example:
#   pr-pending.png   the PR comment while a two-step workflow waits (one change approved, one pending);
#   pr-rollout.png   a rollout change: its plan drawn with stages, delays and the health gate;
#   pr-approved.png  every change approved;
#   pr-rejected.png  QA requested changes;
#   status.png       `gitops-flags status` after examples/demo.sh: a completed and a rolled-back rollout.
# Each comment is `gitops-flags plan --format markdown` with a `--pull` snapshot of reviews (the text
# `check` posts), rendered as GitHub-flavoured Markdown (docs/screenshots.py) with Mermaid's own bundle,
# and photographed by headless Chromium. Offline.
#
# Needs: an installed gitops-flags with the test extra (pip install -e '.[test]': markdown-it-py), git,
# chromium, Mermaid from `(cd tests/mermaid && npm ci)`, and an emoji font (Debian: fonts-noto-color-emoji);
# pngquant, when installed, makes the files a third of the size.
# Usage: bash docs/screenshots.sh [OUT_DIR]   (default docs/img)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/docs/img}
python=${PYTHON:-python3}
chromium=${CHROMIUM:-chromium}
mermaid_js=$here/tests/mermaid/node_modules/mermaid/dist/mermaid.min.js

need() { command -v "$1" >/dev/null 2>&1 || { echo "screenshots.sh: $1 not found ($2)" >&2; exit 2; }; }
need gitops-flags "pip install -e '.[test]'"
need git "install git"
need "$chromium" "apt-get install chromium, or set CHROMIUM"
[ -f "$mermaid_js" ] || { echo "screenshots.sh: run (cd tests/mermaid && npm ci) first" >&2; exit 2; }
"$python" -c 'import markdown_it' 2>/dev/null || { echo "screenshots.sh: $python lacks markdown-it-py (the test extra)" >&2; exit 2; }
fc-list 2>/dev/null | grep -qi emoji || echo "screenshots.sh: no emoji font; the verdict marks will be boxes" >&2

work=$(mktemp -d -t gitops-flags-shots.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com
export GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com
repo=$work/repo
git() { command git -C "$repo" -c init.defaultBranch=main -c commit.gpgsign=false "$@"; }

# Photograph a page: one run to learn its height (the page sets data-height once drawn), one to shoot.
shoot() {  # shoot NAME WIDTH
  local html=$work/$1.html height
  local flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
    --disable-component-update --disable-sync --hide-scrollbars --force-device-scale-factor=1
    --allow-file-access-from-files --virtual-time-budget=20000)
  height=$("$chromium" "${flags[@]}" --user-data-dir="$(mktemp -d -p "$work")" --window-size="$2,6000" \
    --dump-dom "file://$html" 2>/dev/null | sed -n 's/.*data-height="\([0-9]*\)".*/\1/p' | head -n 1)
  [ -n "$height" ] || { echo "screenshots.sh: $1.html did not finish drawing" >&2; exit 1; }
  "$chromium" "${flags[@]}" --user-data-dir="$(mktemp -d -p "$work")" --window-size="$2,$height" \
    --screenshot="$out/$1.png" "file://$html" 2>/dev/null
  if command -v pngquant >/dev/null 2>&1; then  # a palette of 256 colours: a third of the bytes, same look
    pngquant --force --skip-if-larger --strip --quality=70-95 --output "$out/$1.png" "$out/$1.png" || true
  fi
  echo "$out/$1.png (${2}x$height)"
}

comment() {  # comment NAME BASE HEAD PULL.json VERDICT CHANGE… (what the comment must show, or no picture)
  local name=$1 base=$2 head=$3 snapshot=$4 verdict=$5 want
  shift 5
  gitops-flags plan -C "$repo" --base "$base" --head "$head" --pull "$snapshot" --format markdown \
    >"$work/$name.md" || true
  for want in "gitops-flags: $verdict" "$@"; do
    grep -qF -- "$want" "$work/$name.md" || {
      echo "screenshots.sh: $name: the comment lacks '$want' (has the bundled example changed?)" >&2; exit 1; }
  done
  "$python" "$here/docs/screenshots.py" comment "$work/$name.md" "$work/$name.html" --mermaid "$mermaid_js"
  shoot "$name" 834
}

pull() {  # pull HEAD AUTHOR [LOGIN:STATE …] > snapshot (the teams are the example's)
  "$python" - "$@" <<'PY'
import json, sys
head, author, *reviews = sys.argv[1:]
print(json.dumps({
    "author": author, "labels": [],
    "reviews": [{"id": i, "user": {"login": r.split(":")[0], "type": "User"}, "state": r.split(":")[1],
                 "commit_id": head} for i, r in enumerate(reviews, 1)],
    "teams": {"acme/eng-managers": ["maria"], "acme/qa": ["quinn"], "acme/platform": ["sam"],
              "acme/search": ["maria", "sam"], "acme/checkout": ["maria", "dana"]},
}, indent=2))
PY
}

# The bundled example, adopted on main.
mkdir -p "$repo/.github"
cp -R "$here/flags" "$repo/flags"
cp "$here/.github/gitops-flags.yml" "$here/.github/CODEOWNERS" "$repo/.github/"
git init -q && git add -A && git commit -qm "Adopt gitops-flags"

# The walkthrough's PR (examples/demo.sh step 3): autocomplete rolled out in production, legacy export
# back on in staging.
git switch -q -c alice/autocomplete
cat >>"$repo/flags/search/search_autocomplete.yaml" <<'YAML'
    rollout:
      variant: "on"
      stages: [5, 25, 50, 75, 100]
      stage_delay: 2h
YAML
sed -i '0,/^    enabled: false$/s//    enabled: true/' "$repo/flags/legacy_export.yaml"
git commit -qam "Roll out search autocomplete; legacy export back on in staging"
head=$(git rev-parse HEAD)
pull "$head" alice sam:APPROVED >"$work/pending.json"
comment pr-pending main "$head" "$work/pending.json" pending '`search_autocomplete` · `production` — rollout' 'legacy_export · staging — toggle, approved'
pull "$head" alice alice:APPROVED maria:APPROVED quinn:APPROVED sam:APPROVED >"$work/approved.json"
comment pr-approved main "$head" "$work/approved.json" approved "2 approved changes"

# A rollout change: new_checkout_flow starts at 1% and waits 4h per stage; the manager has approved.
git switch -q -c dana/checkout-slower main
sed -i 's/      stages: \[5, 25, 50, 75, 100\]/      stages: [1, 5, 25, 50, 100]/; s/      stage_delay: 2h/      stage_delay: 4h/' \
  "$repo/flags/checkout/new_checkout_flow.yaml"
git commit -qam "Slower new checkout rollout: from 1%, 4h per stage"
head=$(git rev-parse HEAD)
pull "$head" dana maria:APPROVED >"$work/rollout.json"
comment pr-rollout main "$head" "$work/rollout.json" pending "1/5/25/50/100%" "Gate before every stage"

# Rejected: express pay back on in production; QA asks for changes.
git switch -q -c dana/express-pay-on main
sed -i 's/^    enabled: false  .*$/    enabled: true\n    default_variant: "on"/' "$repo/flags/checkout/express_pay.yaml"
git commit -qam "Express pay back on in production"
head=$(git rev-parse HEAD)
pull "$head" dana maria:APPROVED quinn:CHANGES_REQUESTED >"$work/rejected.json"
comment pr-rejected main "$head" "$work/rejected.json" rejected "changes requested"

# The on-call view: what is served after the demo's rollouts (one completed, one rolled back by its gate).
GITOPS_FLAGS_DEMO_DIR=$work/demo bash "$here/examples/demo.sh" >"$work/demo.log" 2>&1
{
  for key in search_autocomplete new_checkout_flow; do
    set -- status "$key" -C repo --store file:store --now 2026-12-01T17:30:00Z
    echo "$ gitops-flags $*"
    (cd "$work/demo" && gitops-flags "$@" 2>/dev/null)  # stderr: the demo store is not sealed
  done
} >"$work/status.txt"
grep -q "completed" "$work/status.txt" && grep -q "rolled_back" "$work/status.txt" || {
  echo "screenshots.sh: the demo's status lacks a completed and a rolled-back rollout (see $work/demo.log)" >&2
  trap - EXIT; exit 1; }
"$python" "$here/docs/screenshots.py" terminal "$work/status.txt" "$work/status.html"
shoot status 992
