#!/usr/bin/env bash
# Headless Chromium for the dashboard's browser test (e2e/dashboard_*_test.go).
#
#   scripts/chromium.sh install   install Debian's chromium package when no
#                                 browser is found; print the browser's path
#   scripts/chromium.sh path      print the browser's path, exit 1 if none
#
# The browser is looked up in this order: $ATLAS_CHROMIUM (a path), then
# chromium, chromium-browser, google-chrome on PATH. Only Debian's package is
# installed, with apt-get (as root, or through sudo); test tools' own browser
# downloads (npx playwright install, puppeteer) do not work on machines
# without internet access and are not used.
#
# The browser test runs `install` itself when it finds no browser, and fails
# (never skips) when that fails.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

# find_browser prints the first browser found, or fails.
find_browser() {
	if [[ -n ${ATLAS_CHROMIUM:-} ]]; then
		[[ -x $ATLAS_CHROMIUM ]] || die "ATLAS_CHROMIUM=$ATLAS_CHROMIUM is not an executable file"
		echo "$ATLAS_CHROMIUM"
		return 0
	fi
	local c
	for c in chromium chromium-browser google-chrome; do
		if command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return 0
		fi
	done
	return 1
}

install_browser() {
	if find_browser; then
		return 0
	fi
	command -v apt-get >/dev/null 2>&1 ||
		die "no Chromium found and apt-get is missing, so it cannot be installed here. Install Chromium or Chrome and set ATLAS_CHROMIUM to its path."
	local -a sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 ||
			die "no Chromium found, and installing it needs root but sudo is missing. Run as root: apt-get install -y chromium"
		sudo=(sudo)
	fi
	local start=$SECONDS
	log "installing Debian's chromium with apt-get (first run only)"
	# apt-get update costs tens of seconds: only when the install fails without it.
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2; then
		log "apt-get install failed; running apt-get update and trying once more"
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
			die "apt-get update failed; cannot install chromium"
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2 ||
			die "apt-get install chromium failed (see above)"
	fi
	find_browser || die "apt-get installed chromium but no browser is on PATH ($PATH)"
	log "installed $("$(find_browser)" --version 2>/dev/null | head -n 1) in $((SECONDS - start))s"
}

case ${1:-} in
install) install_browser ;;
path) find_browser || die "no Chromium found: run scripts/chromium.sh install" ;;
*) usage ;;
esac
