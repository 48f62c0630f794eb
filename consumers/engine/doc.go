// Package engine adapts pure processors to Kafka: group membership,
// one goroutine per owned partition, decode and validation with a dead-letter
// topic, restore on assignment, and commits that happen only after what
// depends on them is durable.
//
// The contract with processors is in package consumers/stream. The engine's
// part of it: a record that cannot be decoded, validated or processed (an
// error or a panic) goes to the dead-letter topic with its source topic,
// partition, offset, stage and reason as headers, and processing continues;
// at a checkpoint the processor's outputs are made durable first, then the
// dead letters are acknowledged, then the offset is committed through
// kafka.Client.OffsetCommit with the generation id and member id, so that a
// member that lost the partition in a rebalance (a zombie) has its commit
// refused by the broker.
//
// Dead letters are written at least once: a crash after they were
// acknowledged and before the commit writes them again on restart. Their
// source topic, partition and offset headers identify a record, so a reader
// of the dead-letter topic can drop repeats. Below the last commit's
// processed mark they are never written again.
//
// Processors never import kafka-go or clickhouse-go; sinks are interfaces
// they define and cmd/atlas wires.
package engine
