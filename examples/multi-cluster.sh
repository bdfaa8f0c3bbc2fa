#!/usr/bin/env bash
# The multi-cluster walkthrough, end to end and non-interactively, from this checkout (its .venv,
# README's first command): first the commands of README.md's "Several clusters" section, then
# those of docs/multi-cluster.md, each exactly as printed there (tests/test_examples.py compares
# them line by line, the templates' URL standing for "$templates"). It builds, in DEST (a new folder):
#   acme-gitops/  the platform repository: clusters prod (first) and staging (dev, and app cart,
#                 came and went), staging on Flux 2.10.0, prod untouched by that upgrade; apps shop
#                 (staging and prod) and billing (staging only)
#   shop/         an app on staging and prod, one environment each; image 1.28-alpine landed on
#                 staging, was promoted to prod (one line), then 1.29-alpine landed on staging
#   billing/      an app on staging only: one environment, its manifests at the repository root
#   keys/         the clusters' private age keys (OPENCENTER_AGE_KEY_DIR), outside the repositories
# Every repository is committed, and the check passes on each (the apps' own checks in the README's
# part, the platform with both apps as tenants at the end). tests/test_examples.py runs it.
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
# Found, not imported: importing Copier alone costs half a second, which the first command pays anyway.
if ! "$py" -c "import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, ('copier', 'hooks'))))" 2>/dev/null; then
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
# The commands as the README's activated .venv has them, run with this checkout's Python.
copier() { "$py" -m copier "$@"; }
opencenter-cluster() { "$py" -m hooks.cluster_admin "$@"; }
opencenter-onboard() { "$py" -m hooks.onboard "$@"; }
opencenter-offboard() { "$py" -m hooks.offboard "$@"; }
opencenter-check() { "$py" -m hooks.check "$@"; }
step() { printf '\n== %s\n' "$*"; }

step "README.md, Several clusters: staging and prod, shop on both, billing on staging, promotion, Flux on staging only"
copier copy --trust --defaults --data template=platform --data customer_name=acme "$templates" acme-gitops
git -C acme-gitops init -q -b main && git -C acme-gitops add -A && git -C acme-gitops commit -qm "Platform repository, cluster prod"
opencenter-cluster add --platform acme-gitops staging && git -C acme-gitops commit -qm "Add cluster staging"   # own overlay, age key
copier copy --trust --defaults --data template=app --data app_name=shop --data platform_repo=acme-gitops --data environments=staging,prod --data image=docker.io/nginxinc/nginx-unprivileged:1.27-alpine "$templates" shop
git -C shop init -q -b main && git -C shop add -A && git -C shop commit -qm "App shop"
git -C acme-gitops commit -qm "Onboard shop on staging and prod"
copier copy --trust --defaults --data template=app --data app_name=billing --data platform_repo=acme-gitops --data environments=staging "$templates" billing
git -C billing init -q -b main && git -C billing add -A && git -C billing commit -qm "App billing"
git -C acme-gitops commit -qm "Onboard billing on staging"
perl -pi -e 's/newTag: .*/newTag: 1.28-alpine/' shop/deploy/overlays/staging/kustomization.yaml && git -C shop commit -qam "New image on staging"
perl -pi -e 's/newTag: .*/newTag: 1.28-alpine/' shop/deploy/overlays/prod/kustomization.yaml && git -C shop commit -qam "Promote it to prod"
perl -pi -e 's/newTag: .*/newTag: 1.29-alpine/' shop/deploy/overlays/staging/kustomization.yaml && git -C shop commit -qam "Next image on staging"
opencenter-cluster set --platform acme-gitops staging flux_version=2.10.0 && git -C acme-gitops commit -qm "Flux 2.10.0 on staging"
opencenter-check acme-gitops --tenant shop=shop --tenant billing=billing
opencenter-check shop --platform acme-gitops && opencenter-check billing --platform acme-gitops

step "docs/multi-cluster.md: a cluster added, an app on two clusters leaving one, the cluster removed, the app gone"
opencenter-cluster add --platform acme-gitops dev                          # another cluster, its own age key
git -C acme-gitops commit -qm "Add cluster dev"                            # each command stages, you commit
opencenter-cluster list --platform acme-gitops
opencenter-onboard --platform acme-gitops --name cart --url ssh://git@github.com/acme/cart --cluster dev --cluster staging
git -C acme-gitops commit -qm "Onboard cart on dev and staging"
opencenter-cluster set --platform acme-gitops dev flux_version=2.10.0      # dev first, then the next cluster
git -C acme-gitops commit -qm "Flux 2.10.0 on dev"
opencenter-offboard --platform acme-gitops --name cart --cluster dev       # off one cluster only
git -C acme-gitops commit -qm "cart leaves dev"
opencenter-cluster remove --platform acme-gitops dev                       # refused while apps run there
git -C acme-gitops commit -qm "Remove cluster dev"
opencenter-offboard --platform acme-gitops --name cart                     # off every cluster
git -C acme-gitops commit -qm "cart leaves"

# Only the platform changed since the README's checks: checked with both apps as tenants, it builds
# each app and judges it with the same cluster models `opencenter-check APP --platform` uses, so the
# apps' own checks again would repeat the README's on unchanged trees.
step "The check, once more: every cluster, and shop and billing as their clusters would admit them"
opencenter-check acme-gitops --tenant shop=shop --tenant billing=billing

printf '\nDone: %s/{acme-gitops,shop,billing}, private keys in %s/keys.\n' "$dest" "$dest"
