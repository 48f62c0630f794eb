package player

import (
	"sync/atomic"

	"github.com/segmentio/kafka-go"
)

// balancer is the one partitioner of every Producer and of [Partition].
// Murmur2Balancer hashes a key exactly as the Java client's default
// partitioner does (murmur2 of the key bytes, sign bit cleared, modulo the
// partition count). Keys of Atlas records are never nil, so its random
// fallback for nil keys is never used.
var balancer kafka.Balancer = &kafka.Murmur2Balancer{}

// Partition returns the partition, out of partitions, that a Producer
// writes a record with this key to: the partition of the profile for
// playback and browse events. It runs the Producer's own balancer, so the
// two cannot disagree, and it matches the Java client's default
// partitioner. It returns -1 when partitions is not positive. It is safe for
// concurrent use.
func Partition(key string, partitions int) int {
	if partitions < 1 {
		return -1
	}
	return balancer.Balance(kafka.Message{Key: []byte(key)}, partitionList(partitions)...)
}

// partitionCache holds [0, 1, …, n-1] for the largest n asked so far, as
// the Writer passes its balancer the list of partition numbers.
var partitionCache atomic.Pointer[[]int]

func partitionList(n int) []int {
	if p := partitionCache.Load(); p != nil && len(*p) >= n {
		return (*p)[:n]
	}
	list := make([]int, n)
	for i := range list {
		list[i] = i
	}
	partitionCache.Store(&list)
	return list
}
