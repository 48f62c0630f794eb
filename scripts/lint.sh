#!/usr/bin/env bash
# go vet and gofmt over the whole module; fails listing what is wrong.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ATLAS_ROOT"

log "go vet ./..."
go vet -tags integration ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))
if [[ -n $unformatted ]]; then
	die "gofmt would change these files (run gofmt -w):"$'\n'"$unformatted"
fi
log "gofmt: clean"
scripts/dashboard-assets.sh check
