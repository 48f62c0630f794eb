// Package replay streams a recorded interaction log — MovieLens ratings —
// into Atlas as playback, browse and catalog records, so that the consumers
// can be run and judged on real user–title–time triples that nobody on the
// team made up.
//
// # Pieces
//
// The core is pure and knows nothing about Kafka:
//
//   - readers: [LoadRatings] / [ReadRatings] for ratings.csv
//     (userId,movieId,rating,timestamp), ML-100k's u.data (tab-separated,
//     no header, or RecBole's user_id:token… header) and ML-1M's ratings.dat
//     ('::'-separated); [LoadMovies] / [ReadMovies] for movies.csv (quoted titles,
//     '|'-separated genres) and u.item (Latin-1, 19 genre flags). The format
//     is detected from the first line. A malformed line is a [*LineError]
//     naming file, line and problem, or, with [ReadOptions.SkipBad], a count
//     in [ReadStats];
//   - [Order]: the replay order, (timestamp, user, item);
//   - the mapping from a rating to a play ([WatchFraction], [TitleDuration],
//     [ViewerOf], and the ids such as [ProfileID]);
//   - [Generator]: turns ordered interactions into events and hands them to
//     a [Sink]; [SendCatalog] does the same for titles.
//
// Around it: [Paced] (speed or rate) and [KafkaSink]. Any [Sink] will do:
// `atlas replay --out` writes the simulator's record files
// (producers/sim/recfile) through one.
//
// # The mapping, in one place
//
// One rating (user u, item i, Unix time t, r stars) is exactly one play:
// a start event at t, heartbeats every 30 minutes of content, and a complete
// (watch fraction ≥ 0.9) or stop event at t plus the watched time, all in
// session "ml-s<u>-<i>-<t>", followed by a browse rating event with r stars
// (see [Generator] for the table). The watch fraction is drawn from
// Beta(12·m, 12·(1−m)) with mean m rising linearly from 0.15 at half a star
// to 0.95 at five stars, by a generator seeded with (seed, u, i) — so the
// fraction of one rating depends on nothing else. A title runs 80 to 150
// minutes, a function of its id. Each user is one account ("ml-a<u>"), one
// profile ("ml-u<u>", the Kafka key) and one device ("ml-d<u>"), with a
// country, device type, CDN and ISP hashed from the user id. Event ids are
// "ml-<u>-<i>-<t>-s" (start), "-h<k>" (heartbeats), "-e" (the end) and
// "-r" (rating): a second replay produces the same ids.
//
// Ratings are not views: a user who rated twenty films within a minute gets
// twenty overlapping plays. Replays are for the personalization and
// content-strategy roles; they are not ground truth for the anomaly role.
//
// # Memory
//
// Sorting needs every row in memory. An [Interaction] is 16 bytes:
// MovieLens-small (100,836 ratings) takes 1.6 MB, ml-25m (25 million)
// about 400 MB for the rows, plus the reader's buffers. The generator keeps
// only the plays still open at the current event time.
package replay
