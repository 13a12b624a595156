#!/usr/bin/env bash
# Rebuilds the UI from source and fails if the result differs from the committed web/dist/, which is what
# `go build` embeds. Run from anywhere; needs Node 20+ and npm. Usage: web/scripts/check-dist.sh [--no-install]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" != "--no-install" ]]; then
  npm ci --no-audit --no-fund
fi
npm run build
if ! git diff --exit-code --stat -- dist || [[ -n "$(git ls-files --others --exclude-standard -- dist)" ]]; then
  echo "web/dist does not match web/src: run 'npm ci && npm run build' in web/ and commit web/dist" >&2
  git status --short -- dist >&2
  exit 1
fi
echo "web/dist matches its source"
