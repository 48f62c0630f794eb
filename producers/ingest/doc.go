// Package ingest is `atlas ingest`: the HTTP gateway for devices that cannot
// speak Kafka (browsers, TVs, consoles). It authenticates each request,
// limits it, stamps and anonymises its events, and answers only after Kafka
// acknowledged every event it accepted.
//
// # Request
//
//	POST /v1/events
//	Content-Type: application/msgpack   (or application/json, for browsers)
//	X-Atlas-Session:   the session id
//	X-Atlas-Timestamp: Unix seconds
//	X-Atlas-Nonce:     1–64 printable ASCII characters, unique within the session
//	X-Atlas-Signature: hex HMAC-SHA256(session key, timestamp "\n" nonce "\n" body)
//
// The body is a batch, as a msgpack map (or the same shape in JSON):
//
//	{"events": [{"s": "playback.v1", "e": {…playback event…}},
//	            {"s": "browse.v1",   "e": {…browse event…}}, …]}
//
// Each event is a map with the short keys of package schemas ("id", "t",
// "pro", …); [EncodeBatch] and [EncodeBatchJSON] write batches. Devices may
// send playback.v1 and browse.v1 events; every event must carry the signed
// session id in "ses". Unknown keys are ignored, at every level.
//
// # Authentication
//
// The session key is [SessionKey](server secret, session id): the login
// service issues it to the device with the session, and the gateway derives
// it again for each request, so it keeps no key store and a key extracted
// from a device is worth one session. [Sign] signs a request. Timestamps
// more than 300 s from the server clock are refused, and so is a nonce that
// the session already used within that window (a replay); every request,
// retries included, is signed afresh with a new nonce.
//
// # What reaches Kafka
//
// The gateway overwrites each event's receive time ("rt") with its own
// clock and its client network ("net") with [ClientNet] of the client
// address: the /24 (IPv4) or /48 (IPv6) prefix and a keyed hash. Raw client
// addresses are never written to Kafka or to the logs. The client address is
// the TCP peer, or, when the peer is in [Config.TrustedProxies], the address
// that X-Forwarded-For names.
//
// # Answers
//
//	200  the batch was read; the body is a [Response] with one [EventStatus]
//	     per event: "accepted" events are acknowledged by Kafka (acks=all);
//	     "rejected" ones were not sent, with the field and the reason. A
//	     batch with some invalid events still gets 200: the valid ones are
//	     written, and the answer says exactly which were not.
//	400  the body is not a batch (malformed msgpack or JSON, no events)
//	401  unsigned, bad signature, timestamp outside ±300 s, replayed nonce
//	413  body over 1 MiB, or more than 500 events
//	415  Content-Type other than msgpack or JSON
//	429  over the session's or the network's rate; Retry-After says when
//	503  Kafka did not acknowledge every accepted event (retry the whole
//	     batch after Retry-After; event ids make duplicates harmless), or
//	     the gateway is at its concurrency cap
//
// Every answer other than 200 is an [ErrorResponse] with a reason. Limits
// are [Config] fields.
//
// # Cost
//
// scripts/bench-ingest.sh (go run ./producers/ingest/bench) runs the
// gateway over loopback beside the raw kafka-go Writer it is built on, in
// one process, on one local broker, batches of 100 playback events, acks=all.
// On the 2-core development machine (shared with other work and with the
// broker, so expect ±20 %, and the raw Writer's 64-client rate swings
// between about 0.8 and 1.5 million events/s from run to run) it printed,
// as medians of 3 interleaved 5 s repetitions:
//
//	clients  raw events/s  gateway events/s  ratio  gateway p99  gateway CPU/event
//	     16       134,736           126,777   0.94      15.5 ms            3.4 µs
//	     64     1,060,512           452,025   0.43      27.7 ms            3.1 µs
//
// At 16 clients both sides wait on the linger and the acknowledgements, as
// a gateway does in service. At 64 the CPUs are the limit and the raw Writer
// (pre-encoded messages, no HTTP) shows what Kafka alone costs: about 1 µs
// of this process's CPU per event. Of the gateway side's 3.1 µs (its HTTP
// clients included), a CPU profile puts about 27 % in the producer
// (player.Producer validates and encodes every event again, then the
// Writer), 15 % in decoding and validating (package schemas), 14 % in the
// benchmark's clients (signing, HTTP), 13 % in kafka-go's connections, 9 %
// in the garbage collector, 5 % in net/http, and 10 % in the gateway's own
// code: the signature check, splitting the batch, the answer.
// BenchmarkGatewayBatchOf100 measures the gateway's own part without Kafka
// (about 0.75 µs per event).
//
// GET /healthz answers 200 while the process serves; GET /readyz answers
// 503 while Kafka does not take writes or the gateway drains; GET /metrics
// serves Prometheus metrics (atlas_ingest_…, and the producer's
// atlas_player_… when they share a registry).
package ingest
