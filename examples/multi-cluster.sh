#!/usr/bin/env bash
# The multi-cluster walkthrough of docs/multi-cluster.md, end to end and non-interactively, from
# this checkout (its .venv, README's first command). It builds, in DEST (a new folder):
#   acme-gitops/  the platform repository: clusters prod (first) and staging
#   shop/         an app on both clusters, one environment each, staging ahead of prod by one
#                 image tag (a new image lands on staging, promotion to prod is one line)
#   billing/      an app on staging only
#   keys/         the clusters' private age keys (OPENCENTER_AGE_KEY_DIR), outside the repositories
# Every repository is committed, and the check passes on all three. tests/test_examples.py runs it.
# TEMPLATES: where to copy the templates from (default: this checkout, which must be committed:
# Copier records the commit, which `opencenter-cluster` and onboarding update from).
set -euo pipefail

usage="usage: examples/multi-cluster.sh DEST"
here="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:?$usage}"
if [ -e "$dest" ]; then
    echo "error: $dest exists; give a folder that does not exist yet" >&2
    exit 2
fi
py="${PYTHON:-$here/.venv/bin/python}"
templates="${TEMPLATES:-$here}"
if ! "$py" -c "import copier, hooks" 2>/dev/null; then
    echo "error: $py cannot import copier and hooks; run the README's first command, or set PYTHON" >&2
    exit 2
fi
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
cd "$dest"

# Keys of this walkthrough stay in DEST/keys; commits need an identity, even on a fresh machine.
export OPENCENTER_AGE_KEY_DIR="$dest/keys"
export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-openCenter walkthrough}" GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-walkthrough@example.invalid}"
export GIT_COMMITTER_NAME="${GIT_COMMITTER_NAME:-$GIT_AUTHOR_NAME}" GIT_COMMITTER_EMAIL="${GIT_COMMITTER_EMAIL:-$GIT_AUTHOR_EMAIL}"
copier() { "$py" -m copier "$@"; }
commit() { git -C "$1" add -A && git -C "$1" commit -q -m "$2"; }
step() { printf '\n== %s\n' "$*"; }

step "1. The platform repository, first cluster prod"
copier copy --trust --defaults --quiet --data template=platform --data customer_name=acme "$templates" acme-gitops
git -C acme-gitops init -q -b main
commit acme-gitops "Platform repository from openCenter templates"

step "2. A second cluster, staging, with its own age key"
"$py" -m hooks.cluster_admin add --platform acme-gitops staging
commit acme-gitops "Add cluster staging"

step "3. App shop on staging and prod (one environment each), registered in the same step"
copier copy --trust --defaults --quiet --data template=app --data app_name=shop --data platform_repo=acme-gitops \
    --data environments=staging,prod --data image=docker.io/nginxinc/nginx-unprivileged:1.27-alpine "$templates" shop
git -C shop init -q -b main
commit shop "shop from openCenter templates"
commit acme-gitops "Onboard app shop on staging and prod"

step "4. A new shop image on staging: prod keeps 1.27 until it is promoted (one line)"
sed -i 's/newTag: "\{0,1\}1.27-alpine"\{0,1\}/newTag: 1.28-alpine/' shop/deploy/overlays/staging/kustomization.yaml
grep -q 'newTag: 1.28-alpine' shop/deploy/overlays/staging/kustomization.yaml
commit shop "staging runs 1.28-alpine"

step "5. App billing on staging only"
copier copy --trust --defaults --quiet --data template=app --data app_name=billing --data platform_repo=acme-gitops \
    --data environments=staging "$templates" billing
git -C billing init -q -b main
commit billing "billing from openCenter templates"
commit acme-gitops "Onboard app billing on staging"

step "6. The check: every cluster, and each app as its clusters would admit it"
"$py" -m hooks.check acme-gitops --tenant shop=shop --tenant billing=billing
"$py" -m hooks.check shop --platform acme-gitops
"$py" -m hooks.check billing --platform acme-gitops
"$py" -m hooks.cluster_admin list --platform acme-gitops

printf '\nDone: %s/{acme-gitops,shop,billing}, private keys in %s/keys.\n' "$dest" "$dest"
