package replay

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/topology"
)

func TestWriteErrorsAreSummarisedToACountAndTheFirstError(t *testing.T) {
	we := make(kafka.WriteErrors, 2000)
	for i := 5; i < len(we); i++ {
		we[i] = kafka.MessageSizeTooLarge
	}
	got := summarize(we).Error()
	if !strings.HasPrefix(got, "1995 of 2000 failed, the first with: [10] Message Size Too Large") || len(got) > 400 {
		t.Fatalf("summary %q", got)
	}
	if !errors.Is(summarize(we), kafka.MessageSizeTooLarge) {
		t.Fatal("the summary does not wrap the first error")
	}
	plain := errors.New("dial tcp: refused")
	if summarize(plain) != plain {
		t.Fatal("a plain error was changed")
	}
}

func TestKafkaConfigValidation(t *testing.T) {
	topo := topology.Default(topology.Options{})
	check := func(ok bool, c KafkaConfig) {
		t.Helper()
		if err := c.Validate(); (err == nil) != ok {
			t.Fatalf("%+v: Validate() = %v", c, err)
		}
	}
	check(true, KafkaConfig{Topology: topo})
	check(true, KafkaConfig{Topology: topo, BatchSize: 1, Linger: time.Second})
	check(false, KafkaConfig{Topology: topo, BatchSize: -1})
	check(false, KafkaConfig{Topology: topo, Linger: -time.Second})
	check(false, KafkaConfig{Topology: topo, Conn: kafkaconn.Config{Brokers: []string{"no-port"}}})
	check(false, KafkaConfig{})
}
