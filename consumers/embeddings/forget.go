package embeddings

import (
	"context"
	"fmt"
)

// Forget erases a profile from this member for `atlas erase-profile`: it
// drops the profile's state from memory and writes a tombstone (its key
// with a null value) to the partition's changelog, so that no restore
// brings it back. owned is false, and nothing is written, when this member
// does not serve the partition; found says whether the profile was held.
//
// Forget waits for a flush in flight and holds the next one back until the
// tombstone is acknowledged, so a snapshot of the profile taken before the
// call cannot land after the tombstone and revive it. Events of the profile
// processed after Forget build a new profile from them alone.
//
// What the title model learned from the profile's plays stays: it is
// summed over every profile and holds nothing that names one.
func (n *Node) Forget(ctx context.Context, partition int, id string) (found, owned bool, err error) {
	n.mu.Lock()
	pt := n.parts[partition]
	n.mu.Unlock()
	if pt == nil {
		return false, false, nil
	}
	select {
	case <-pt.restored:
	default:
		return false, false, nil
	}
	if pt.err != nil {
		return false, false, nil
	}
	pt.flushMu.Lock()
	defer pt.flushMu.Unlock()
	pt.mu.Lock()
	if p := pt.profiles[id]; p != nil {
		found = true
		delete(pt.dirty, p)
		delete(pt.profiles, id)
		n.m.profiles.Dec()
	}
	pt.mu.Unlock()
	if err := n.cfg.Store.WriteProfiles(ctx, partition, []KV{{Key: []byte(id)}}); err != nil {
		return found, true, fmt.Errorf("cannot write the tombstone of profile %q to partition %d: %w", id, partition, err)
	}
	n.cfg.Logger.Info("profile erased", "partition", partition, "found", found)
	return found, true, nil
}
