// Package embeddings is the embeddings role's learner and processor: taste
// vectors and recommendations learned online from playback, with state
// that survives crashes exactly. It imports neither kafka-go nor
// clickhouse-go (a test keeps it so): package changelog puts its [Store]
// on Kafka, package api serves it over HTTP, and `atlas eval recs` runs
// the same learner over a file ([Evaluator]).
//
// # The model
//
// A profile's context is its last Window (40) distinct plays, most recent
// first, the k-th weighing Decay^k (0.9^k) times the play's own weight (1,
// or less when the viewer abandoned it: weightOf). The title model holds,
// for each title j, a row of weighted co-occurrences: when a profile plays
// i for the first time, every title j of its context gets Decay^k·w_j
// added at (j, i) ("i after j") and Reverse (0.5) times that at (i, j).
// These rows are the title vectors, sparse, in title space; a profile's
// score for title i is its context's rows added with their weights and
// normalised by popularity,
//
//	score(i) = Σ_k Decay^k·w_k·row_{j_k}(i) / (n_{j_k}^(1−Alpha) · n_i^Alpha) + PopWeight·log(1+n_i)
//
// with n the first plays of a title and Alpha 0.3. Recommendations are the
// top k titles the profile never played (ties to the smaller title id); a
// profile without plays, or unknown, gets its country's most played
// titles (cold start). Browse selects and add-to-lists join the context as
// intents weighing IntentWeight (0.3) but teach the model nothing.
//
// The dense vectors of Dim (32) dimensions are derived from the rows:
// [Model.Refresh] computes the top Dim eigenvectors of the symmetrised,
// cosine-normalised co-occurrence matrix (randomised subspace iteration,
// seeded by title ids), scaled by √λ, so that title·title approximates
// normalised co-occurrence; a profile's taste vector is the weighted sum
// of its context's vectors. The consumer refreshes every few seconds when
// the model changed; DenseWeight blends taste·title into the score.
//
// Why this model (numbers from `atlas eval recs`, issue 10's protocol,
// MovieLens-small, 100,836 ratings): popularity 0.0475 recall@10, item-kNN
// (cosine, 50 recent titles) 0.0817. Online SGD matrix factorisation and
// online skip-gram/CBOW title vectors with a decayed profile (dim 32, one
// pass) stayed near 0.02, below popularity; the dense vectors alone reach
// 0.059. What lifted co-occurrence was recency: decaying both the pairs
// counted (0.9 per position) and the context scored (0.9 per position)
// took recall from 0.082 to 0.115, Alpha 0.3 to 0.120, counting "after"
// twice "before" to 0.127 (NDCG 0.069). The defaults add log-popularity
// (PopWeight 0.03) and the dense score (DenseWeight 0.3): 0.1236, NDCG
// 0.0673, 1.51× item-kNN; 0.1498 vs item-kNN 0.0953 on the first half of
// the file; 0.1245 from `atlas replay --out` plays, whose watch fractions
// weigh the context.
//
// On the simulator (package sim, "Taste": each viewer follows one to
// three communities of ~30 titles and picks by appeal within them),
// 2,000 profiles and 6M events (`atlas simulate --no-kafka --out
// sim.rec.gz --events 6000000 --profiles 2000 --no-incidents`), the
// defaults give recall@10 0.2565, NDCG 0.1372, against popularity 0.1056
// (0.0614) and item-kNN 0.2393 (0.1271): 2.43× popularity. An oracle that
// ranks by the planted weights reaches 0.4151 (3.93×). With half the
// history (3M events, about 5 first plays per profile) the learner gives
// 1.79×. The simulator's earlier taste model, a vector near one or two
// genres times a global Zipf popularity, held even such an oracle to
// about 1.4× popularity and the learner to 0.89× (3M events) and 0.95×
// (6M).
//
// # Exact state without transactions
//
// A [Profile] depends only on its own events: its context, the set of
// titles it played (for "exclude what was watched"), its countries, and
// PlayNext/BrowseNext, the offsets after the last playback and browse
// record applied. A replayed record below them is skipped, so nothing is
// applied twice; and replaying a suffix on top of a restored profile would
// reach the same state anyway (the context is "last distinct plays by
// last occurrence").
//
// The title model is a sum of integer increments, one per first play,
// each derived from the playing profile's context alone (so a replay
// derives the same one). Integers make the sum independent of the order of
// the additions: members that applied the same increments in any order
// hold bit-identical rows, and the dense refresh reads the rows in title
// id order with a start seeded by title ids, so their vectors are
// bit-identical too ([Model.Digest] hashes what they learned). Each row
// keeps, per source partition, the offset after the last increment applied
// to it (its version): an increment at or above the version is applied and
// moves it, one below is skipped. An increment thus lands once in each row
// whether it arrives live, through the model topic, or both, and in any
// interleaving of two writers of one source (a restarted owner and its
// zombie, each in offset order).
//
// A partition (the claims of its playback and browse partitions, which
// share one state) flushes at a checkpoint, in this order, each write
// acknowledged before the next:
//
//  1. the increments learned since the last flush, to the model topic
//     (key inc/<partition>/<offset>);
//  2. every changed profile, to the state changelog partition of the same
//     number (key = profile id);
//  3. then the checkpoint returns, and the engine commits.
//
// A profile record thus never covers an event whose increment is not
// durable. On assignment the Node first waits until it has applied every
// model record written so far (SyncModel), then reads the changelog
// partition to its end. A restart replays from the commit: records below a
// profile's PlayNext are skipped (their increments are in the model
// already), the others are learned again, and their increments skip the
// rows that hold them. Crash tests cut every step (TestCrashesAtAnyPoint…
// in memory, a lost acknowledgement included; e2e kills the process with
// SIGKILL and at the before-commit and after-commit failpoints) and compare
// every profile, vector and top 10 with an uninterrupted run: equal.
//
// A claim whose generation ended writes nothing: a member that lost its
// partitions while paused could otherwise write an older state after the
// new owner's, and compaction keeps the last write, not the newest state.
//
// # Several members
//
// Each member owns the profiles of its partitions and keeps a full copy of
// the title model, merged from every partition's increments: its own live,
// the others' from the model topic (a [Store]'s follower). Concurrent
// updates merge by addition with per-row versions, as above, so once every
// member has read the topic they all hold the same model as a single
// member would (TestTwoMembersMergeTheirIncrementsIntoTheSameModel; e2e
// with two processes). Before that, a member sees another's plays one
// flush and one fetch later. Members announce the partitions they restore
// on the model topic (owner/<partition> → API address), which is how the
// API forwards a request to the owner of a profile.
//
// # Costs
//
// A first play costs about 2 µs to learn (BenchmarkPlay) and writes one
// model record (~0.5 KB with a full context); a top-10 request over 10,000
// titles 0.5 ms, p99 0.8 ms (BenchmarkRecommend); a dense refresh of
// 10,000 titles 1.3 s, in the background. A profile's changelog value is
// ~6 bytes per title watched plus ~2 per context entry, 37 for the int8
// taste vector and a small header: ~100 B at 5 titles, ~200 B at 20, ~340
// B at 40 (BenchmarkRestoreProfiles). A restore reads only each value's
// offsets and decodes a profile when it is first used: a million profiles
// of 20 titles (204 MB) restore in 1.4 s from the local broker, reading
// alone takes 0.3 s, decoding them all would add 4.8 s on one core
// (changelog's BenchmarkRestoreAMillionProfiles). The model topic keeps
// every increment (unique keys), so a member's model restore grows with
// history; compacting it needs per-source snapshots of the rows, not built
// yet.
package embeddings
