// Package changelog puts the embeddings role's state on Kafka: the
// [embeddings.Store] of a Node (profiles in the compacted state changelog,
// co-partitioned with playback; increments and owner announcements in the
// compacted model topic) and the [Follower] that keeps reading a topic as
// a table (the model topic into the Node, the catalog into the API's title
// names).
//
// Writes use acks from all in-sync replicas and return only once every
// record is acknowledged, so the Node, and through it the engine, commits
// input offsets only after the state derived from them is durable.
package changelog
