// Package dashboard serves `atlas dashboard`: one web page for content
// strategy and streaming ops over the aggregates in ClickHouse, with its
// assets embedded in the binary and a JSON API behind it.
//
// # Panels
//
// Each panel is one endpoint, GET /api/<panel>?period=1h[&…], and each
// reuses a named query of schemas/warehouse where one fits, so the page and
// `atlas query` agree:
//
//	trending     named query trending (title names from the catalog)
//	completion   named query completion: completion rate and drop-off deciles
//	genre-gap    named query genre-gap, every country (the page picks one)
//	funnel       named query funnel (top row × artwork) and a sum per row
//	quality      named query quality with a bucket: a series per CDN × ISP,
//	             the busiest cells and the worst by the chosen metric
//	alerts       the newest alert states of the period (table alerts)
//	health       /api/health: whether ClickHouse answers as the dashboard's
//	             user, its version, whether that user is read-only, and
//	             the newest playback window
//
// The period ends with the current minute (whose row is provisional until
// its window closes) and its start is aligned to the series' bucket.
// Unknown parameters, and values the named query refuses, are 400.
//
// # Failure
//
// The page and its assets never need ClickHouse. When ClickHouse is down,
// unreachable, refuses the user or lacks Atlas's tables, every API answer
// is 503 with {"error": reason, "unavailable": true} (errors wrapping
// [ErrUnavailable]), and the page shows a banner with the reason while
// keeping the last data it had. A query the server refuses is 500.
//
// # Users
//
// The dashboard reads ClickHouse only as the read-only user it is given
// (cmd/atlas passes the reader: readonly = 2). It never writes, and
// /api/health reports the user's readonly setting, so a misconfigured
// writable user is visible (and logged as a warning).
//
// # Assets
//
// assets/ holds the page (index.html, app.js, app.css: no build step) and
// assets/vendor/ the charting library, Chart.js, pinned to an exact version
// and vendored with its licence by scripts/dashboard-assets.sh, which
// records the version and checksums in assets/vendor/chart.js.txt; a test
// checks the embedded file against them.
package dashboard
