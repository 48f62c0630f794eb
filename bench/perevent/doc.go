// Package perevent holds the per-event cost benchmarks of `make bench`
// (issue 8, row d): the engine's decode and validation step and each
// role's processor, run over the same simulated traffic, each on one core,
// each reporting CPU nanoseconds, heap allocations and bytes per input
// event. The package has no code of its own; see perevent_bench_test.go.
//
//	go test -run '^$' -bench . -cpu 1 ./bench/perevent/
//
// The processors' own packages keep their focused benchmarks (one play
// learned, one top-10 request, state per account); these run the whole
// role logic over a realistic mix of playback and browse events, so that
// the sum of the rows is what one event costs `atlas run all` on one core.
package perevent
