// Package player is the Go library that player backends (and Atlas's own
// gateway, simulator and replay) use to write events to Kafka.
//
// A [Producer] validates every record with [schemas.Validate], encodes it
// with [schemas.Append], routes it to the topic of its schema
// (playback.v1 → atlas.playback.v1, browse.v1 → atlas.browse.v1,
// catalog.v1 → atlas.catalog.v1, alert.v1 → atlas.alerts.v1, each with the
// topology's prefix), keys it by [schemas.Record.Key] (the profile id for
// events) and sets the headers [schemas.HeaderSchema] and
// [schemas.HeaderContentType]. It never sends a record that fails
// validation.
//
// Underneath is one kafka-go Writer with RequiredAcks = all, so a record
// counts as sent only when every in-sync replica has it. The Writer batches
// per partition: a batch goes out when it holds [Config.BatchSize] records or
// when [Config.Linger] has passed since its first record, whichever comes
// first. Concurrent callers share batches, which is what makes many small
// synchronous sends cheap.
//
// # Two ways to send
//
// [Producer.Send] is asynchronous: it returns once the record is validated
// and queued; a later failure to write it goes to [Config.OnError].
// [Producer.SendSync] returns when Kafka has acknowledged (or refused) each
// record of a slice, with one error per record.
//
// # Bounded buffer
//
// At most [Config.Buffer] records are queued or in flight at a time. When
// the buffer is full, [Config.WhenFull] decides: [Block] waits for room
// until the caller's context ends, [Fail] returns [ErrBufferFull] at once.
// Memory therefore stays bounded however slow Kafka gets.
//
// # Partitioning
//
// Records are partitioned with kafka-go's Murmur2Balancer, which matches the
// Java client's default partitioner for keyed records, so a consumer written
// in any language finds a profile's events where it expects them. [Partition]
// exposes the same computation: the simulator uses it to know which
// partition, and so which consumer, each profile lands on.
//
// # Metrics
//
// The Producer registers, on [Config.Registerer]:
//
//	atlas_player_queued_records            gauge: records queued or in flight (the buffer's use)
//	atlas_player_sent_records_total        counter{schema}: records Kafka acknowledged
//	atlas_player_failed_records_total      counter{schema,reason}: records not sent (invalid, buffer_full, closed, kafka, canceled)
//	atlas_player_batch_records             histogram: records per produce request
//	atlas_player_send_latency_seconds      histogram: from Send/SendSync to Kafka's acknowledgement
package player
