// Package embeddings is the embeddings role's learner and processor: taste
// vectors and recommendations learned online from playback, with state
// that survives crashes exactly. It imports neither kafka-go nor
// clickhouse-go (a test keeps it so); package changelog puts its [Store]
// on Kafka and package api serves it over HTTP.
//
// (The full design notes are being written; see the issue.)
package embeddings
