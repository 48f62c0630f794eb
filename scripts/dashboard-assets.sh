#!/usr/bin/env bash
# Vendor the dashboard's charting library, Chart.js (MIT), from npm.
#
#   scripts/dashboard-assets.sh check            verify the vendored files against
#                                                their recorded checksums (no network)
#   scripts/dashboard-assets.sh update [VERSION] fetch chart.js@VERSION (default: the
#                                                pinned one below) with npm pack, check
#                                                npm's integrity hash, copy the UMD build
#                                                and the licence into
#                                                dashboard/assets/vendor/, and record
#                                                version and checksums
#
# The vendored files are committed, so that building atlas (go:embed) and
# `make test` need neither npm nor the network; this script is how they are
# refreshed. To upgrade: run update with the new version, change
# CHARTJS_VERSION below to match, look at the dashboard (the browser test
# takes a screenshot), commit the script and dashboard/assets/vendor/.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHARTJS_VERSION=4.6.1
VENDOR_DIR="$ATLAS_ROOT/dashboard/assets/vendor"
MANIFEST="$VENDOR_DIR/chart.js.txt"
# name in the package -> name in the vendor folder
BUILD_SRC=package/dist/chart.umd.min.js
BUILD_DST=chart.umd.min.js
LICENSE_SRC=package/LICENSE.md
LICENSE_DST=chart.js.LICENSE.md

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

cmd_check() {
	[[ -f $MANIFEST ]] || die "$MANIFEST is missing: run scripts/dashboard-assets.sh update"
	local key value file bad=0
	while read -r key value file; do
		[[ $key == sha256 ]] || continue
		if [[ ! -f $VENDOR_DIR/$file ]]; then
			log "missing: dashboard/assets/vendor/$file"
			bad=1
		elif [[ $(sha256 "$VENDOR_DIR/$file") != "$value" ]]; then
			log "changed: dashboard/assets/vendor/$file does not match its recorded sha256"
			bad=1
		fi
	done <"$MANIFEST"
	((bad == 0)) || die "the vendored Chart.js differs from $MANIFEST: run scripts/dashboard-assets.sh update"
	log "dashboard/assets/vendor: chart.js $(awk '$1 == "version" {print $2}' "$MANIFEST"), checksums match"
}

cmd_update() {
	local version=${1:-$CHARTJS_VERSION}
	[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "want an exact version such as 4.6.1, not $version"
	need npm "Install Node.js and npm (Debian: apt-get install npm) to refresh the vendored Chart.js."
	tmp=$(mktemp -d) # global: the EXIT trap runs after this function returned
	trap 'rm -rf "$tmp"' EXIT

	log "fetching chart.js@$version with npm pack"
	local integrity license tarball
	integrity=$(cd "$tmp" && npm view "chart.js@$version" dist.integrity) ||
		die "npm cannot find chart.js@$version"
	license=$(cd "$tmp" && npm view "chart.js@$version" license)
	[[ $license == MIT ]] || die "chart.js@$version is licensed $license, not MIT: check before vendoring it"
	tarball=$(cd "$tmp" && npm pack --silent "chart.js@$version" | tail -n 1)
	# npm pack checks the tarball against the registry's integrity; check
	# again against what npm view said, so that the manifest's hash is one
	# we verified ourselves.
	local got
	got="sha512-$(openssl dgst -sha512 -binary "$tmp/$tarball" | base64 -w0)"
	[[ $got == "$integrity" ]] || die "the tarball's sha512 ($got) is not npm's integrity ($integrity)"
	tar -xzf "$tmp/$tarball" -C "$tmp" "$BUILD_SRC" "$LICENSE_SRC"

	mkdir -p "$VENDOR_DIR"
	cp "$tmp/$BUILD_SRC" "$VENDOR_DIR/$BUILD_DST"
	cp "$tmp/$LICENSE_SRC" "$VENDOR_DIR/$LICENSE_DST"
	cat >"$MANIFEST" <<EOF
# Chart.js vendored by scripts/dashboard-assets.sh update; do not edit.
# scripts/dashboard-assets.sh check (and a test of package dashboard)
# verify the files against these checksums.
package chart.js
version $version
license MIT
source https://registry.npmjs.org/chart.js/-/chart.js-$version.tgz
integrity $integrity
sha256 $(sha256 "$VENDOR_DIR/$BUILD_DST") $BUILD_DST
sha256 $(sha256 "$VENDOR_DIR/$LICENSE_DST") $LICENSE_DST
EOF
	log "vendored chart.js@$version into dashboard/assets/vendor ($(wc -c <"$VENDOR_DIR/$BUILD_DST") bytes)"
	if [[ $version != "$CHARTJS_VERSION" ]]; then
		log "note: CHARTJS_VERSION in this script is still $CHARTJS_VERSION; set it to $version"
	fi
}

case ${1:-} in
check) cmd_check ;;
update) cmd_update "${2:-}" ;;
*) usage ;;
esac
