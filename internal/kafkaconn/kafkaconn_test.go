package kafkaconn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go/sasl/plain"
)

func TestValidate(t *testing.T) {
	check := func(c Config, want string) {
		t.Helper()
		err := c.Validate()
		if want == "" {
			if err != nil {
				t.Fatalf("%+v: unexpected error %v", c, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%+v: got %v, want an error containing %q", c, err, want)
		}
	}
	check(Config{}, "")
	check(Config{Brokers: []string{"kafka-1:9093", "kafka-2:9093"}, TLS: true, SASLMechanism: "SCRAM-SHA-512", SASLUser: "atlas", SASLPassword: "x"}, "")
	check(Config{Brokers: []string{"localhost"}}, `invalid Kafka broker address "localhost"`)
	check(Config{SASLMechanism: "GSSAPI", SASLUser: "u", SASLPassword: "p"}, `unknown Kafka SASL mechanism "GSSAPI"`)
	check(Config{SASLMechanism: "SCRAM-SHA-512", SASLUser: "u"}, "needs a user and a password")
	check(Config{SASLUser: "u"}, "no SASL mechanism")
	check(Config{SASLPasswordFile: "/run/secrets/kafka"}, "no SASL mechanism")
	check(Config{SASLMechanism: "SCRAM-SHA-512", SASLUser: "atlas", SASLPasswordFile: "/run/secrets/kafka"}, "")
	check(Config{SASLMechanism: "SCRAM-SHA-512", SASLUser: "atlas", SASLPassword: "x", SASLPasswordFile: "/run/secrets/kafka"}, "use one")
	check(Config{CAFile: "/tmp/ca.pem"}, "TLS is off")
	check(Config{TLS: true, CAFile: "/nonexistent/ca.pem"}, "")
}

func TestParseBrokers(t *testing.T) {
	got := ParseBrokers(" a:1, ,b:2,")
	if len(got) != 2 || got[0] != "a:1" || got[1] != "b:2" {
		t.Fatalf("got %q", got)
	}
}

func TestTransportReportsAnUnreadableCAFile(t *testing.T) {
	_, err := Config{TLS: true, CAFile: "/nonexistent/ca.pem"}.Transport()
	if err == nil || !strings.Contains(err.Error(), "cannot read Kafka CA file") {
		t.Fatalf("got %v", err)
	}
}

func TestThePasswordFileIsReadWhenAClientIsBuilt(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "atlas.password")
	c := Config{SASLMechanism: "SCRAM-SHA-512", SASLUser: "atlas", SASLPasswordFile: file}
	if _, err := c.Dialer(); err == nil || !strings.Contains(err.Error(), "cannot read Kafka SASL password file") {
		t.Fatalf("a missing password file: got %v", err)
	}
	if err := os.WriteFile(file, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Transport(); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("an empty password file: got %v", err)
	}
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := c.Dialer()
	if err != nil {
		t.Fatal(err)
	}
	if d.SASLMechanism == nil || d.SASLMechanism.Name() != "SCRAM-SHA-512" {
		t.Fatalf("dialer mechanism %v, want SCRAM-SHA-512", d.SASLMechanism)
	}
	m, err := Config{SASLMechanism: "PLAIN", SASLUser: "atlas", SASLPasswordFile: file}.mechanism()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := m.(plain.Mechanism); !ok || p.Password != "s3cret" {
		t.Fatalf("PLAIN from the file: %#v, want the password without its newline", m)
	}
}
