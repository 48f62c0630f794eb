package topology

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable writes t for people: a table of topics (name on the cluster,
// partitions, replication factor, cleanup policy, retention, key), a blank
// line, then a table of roles (group, what it reads, the global tables it
// looks up, its changelog, what it writes). It returns the first write error.
func WriteTable(w io.Writer, t Topology) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tRF\tCLEANUP\tRETENTION\tKEY")
	for _, s := range t.Topics {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", t.Name(s.Name), s.Partitions, s.ReplicationFactor, s.Cleanup, formatRetention(s.Retention), orDash(s.Key))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "ROLE\tGROUP\tREADS\tTABLES\tSTATE\tWRITES")
	for _, r := range t.Roles {
		group := "-"
		if r.Group != "" {
			group = t.GroupID(r.Group)
		}
		state := "-"
		if r.Changelog != "" {
			state = t.Name(r.Changelog)
		}
		writes := t.names(r.Writes)
		writes = append(writes, r.Sinks...)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, group, list(t.names(r.Reads)), list(t.names(r.Tables)), state, list(writes))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("cannot write the topology table: %w", err)
	}
	return nil
}

// WriteMermaid writes t as a Mermaid "flowchart LR": producers on the left,
// then topics, then consuming roles, then sinks. Solid edges are writes and
// stream reads, dotted edges with "table" are global-table lookups, and edges
// with "changelog" link a role to its state. Node ids are derived from names
// (topic "atlas.dlq.v1" is t_atlas_dlq_v1, role "anomaly" is r_anomaly, sink
// "clickhouse:alerts" is s_clickhouse_alerts), so they are stable for tests
// and diagrams. It returns the first write error.
func WriteMermaid(w io.Writer, t Topology) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	for _, r := range t.Roles {
		if r.consumes() {
			fmt.Fprintf(&b, "  %s(%s)\n", roleID(r.Name), quote(string(r.Name)+"<br/>group "+t.GroupID(r.Group)))
		} else {
			fmt.Fprintf(&b, "  %s([%s])\n", roleID(r.Name), quote(string(r.Name)))
		}
	}
	for _, s := range t.Topics {
		label := t.Name(s.Name) + "<br/>" + partitions(s.Partitions) + ", " + string(s.Cleanup)
		if s.Cleanup.deletes() {
			label += " " + formatRetention(s.Retention)
		}
		fmt.Fprintf(&b, "  %s[[%s]]\n", topicID(s.Name), quote(label))
	}
	sinks := make(map[string]bool)
	for _, r := range t.Roles {
		for _, sink := range r.Sinks {
			if !sinks[sink] {
				sinks[sink] = true
				fmt.Fprintf(&b, "  %s[(%s)]\n", sinkID(sink), quote(sink))
			}
		}
	}
	// Producers first so that Mermaid lays them out on the left.
	for _, r := range t.Roles {
		if r.consumes() {
			continue
		}
		for _, name := range r.Writes {
			fmt.Fprintf(&b, "  %s --> %s\n", roleID(r.Name), topicID(name))
		}
		for _, sink := range r.Sinks {
			fmt.Fprintf(&b, "  %s --> %s\n", roleID(r.Name), sinkID(sink))
		}
	}
	for _, r := range t.Roles {
		if !r.consumes() {
			continue
		}
		for _, name := range r.Reads {
			fmt.Fprintf(&b, "  %s --> %s\n", topicID(name), roleID(r.Name))
		}
		for _, name := range r.Tables {
			fmt.Fprintf(&b, "  %s -. table .-> %s\n", topicID(name), roleID(r.Name))
		}
		if r.Changelog != "" {
			fmt.Fprintf(&b, "  %s <-->|changelog| %s\n", roleID(r.Name), topicID(r.Changelog))
		}
		for _, name := range r.Writes {
			fmt.Fprintf(&b, "  %s --> %s\n", roleID(r.Name), topicID(name))
		}
		for _, sink := range r.Sinks {
			fmt.Fprintf(&b, "  %s --> %s\n", roleID(r.Name), sinkID(sink))
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("cannot write the topology diagram: %w", err)
	}
	return nil
}

func (t Topology) names(topics []Topic) []string {
	out := make([]string, len(topics))
	for i, name := range topics {
		out[i] = t.Name(name)
	}
	return out
}

// partitions formats a partition count: "1 partition", "6 partitions".
func partitions(n int) string { return plural(n, "partition") }

func list(items []string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func topicID(name Topic) string { return "t_" + nodeID(string(name)) }
func roleID(name Role) string   { return "r_" + nodeID(string(name)) }
func sinkID(name string) string { return "s_" + nodeID(name) }

// nodeID turns a name into a Mermaid node id: letters and digits stay, every
// other byte becomes '_'.
func nodeID(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// quote makes a Mermaid label: in double quotes, with the quote character
// written as an entity.
func quote(label string) string {
	return `"` + strings.ReplaceAll(label, `"`, "#quot;") + `"`
}
