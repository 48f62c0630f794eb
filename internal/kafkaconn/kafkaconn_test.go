package kafkaconn

import (
	"strings"
	"testing"
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
