//go:build integration

package secure

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestTheSecureBrokerRefusesClientsThatCannotProveWhoTheyAre: every way of
// getting the credentials or the transport wrong ends the command with exit
// code 1 (3 for doctor, whose checks fail) and an error that says what was
// refused, and none of the refused commands changed the cluster.
func TestTheSecureBrokerRefusesClientsThatCannotProveWhoTheyAre(t *testing.T) {
	wrong := filepath.Join(t.TempDir(), "wrong.password")
	if err := os.WriteFile(wrong, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	prefix := "refused-" + randomID() + "."
	const authFailed = "SASL Authentication Failed: SASL Authentication failed: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"a wrong password (from the password file) is refused, and the error says authentication failed",
			[]string{"ATLAS_KAFKA_SASL_PASSWORD_FILE=" + wrong}, []string{"topology", "apply"}, 1, authFailed},
		{"a wrong password given in ATLAS_KAFKA_SASL_PASSWORD is refused the same way",
			[]string{"ATLAS_KAFKA_SASL_PASSWORD_FILE=", "ATLAS_KAFKA_SASL_PASSWORD=not-the-password"}, []string{"topology", "apply"}, 1, authFailed},
		{"an unknown user is refused with the same words, so a caller cannot tell users that exist",
			[]string{"ATLAS_KAFKA_SASL_USER=mallory"}, []string{"topology", "apply"}, 1, authFailed},
		{"a producer with a wrong password sends nothing and exits saying why",
			[]string{"ATLAS_KAFKA_SASL_PASSWORD_FILE=" + wrong}, []string{"simulate", "--events", "100", "--no-incidents"}, 1, authFailed},
		{"doctor reports the refused login as a failed Kafka check",
			[]string{"ATLAS_KAFKA_SASL_PASSWORD_FILE=" + wrong}, []string{"doctor", "--timeout", "5s"}, 3, "FAIL  kafka brokers"},
		{"a client without TLS is told that the broker expects TLS",
			[]string{"ATLAS_KAFKA_TLS=false", "ATLAS_KAFKA_CA_FILE="}, []string{"topology", "apply"}, 1, "broker appears to be expecting TLS"},
		{"a client over TLS that does not authenticate is disconnected before its first request",
			[]string{"ATLAS_KAFKA_SASL_MECHANISM=", "ATLAS_KAFKA_SASL_USER=", "ATLAS_KAFKA_SASL_PASSWORD_FILE="}, []string{"topology", "apply"}, 1, "unexpected EOF"},
		{"a client that trusts only the system's CAs rejects the broker's certificate",
			[]string{"ATLAS_KAFKA_CA_FILE="}, []string{"topology", "apply"}, 1, "x509: certificate signed by unknown authority"},
		{"SCRAM-SHA-256 is not offered, only SCRAM-SHA-512",
			[]string{"ATLAS_KAFKA_SASL_MECHANISM=SCRAM-SHA-256"}, []string{"topology", "apply"}, 1, "Unsupported SASL Mechanism"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := atlas(t, clientEnv(append(tc.env, "ATLAS_TOPIC_PREFIX="+prefix)...), tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("atlas %s: exit code %d, output:\n%s\nwant exit code %d and %q", strings.Join(tc.args, " "), code, out, tc.code, tc.want)
			}
			t.Logf("exit code %d: %s", code, errorLine(out, tc.want))
		})
	}

	// The same broker, with the right credentials, answers; and none of the
	// refused commands created a topic.
	client, err := kafkaConfig().Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Fatalf("with the right credentials: %v", err)
	}
	for _, tp := range md.Topics {
		if strings.HasPrefix(tp.Name, prefix) {
			t.Errorf("topic %s exists: a refused command changed the cluster", tp.Name)
		}
	}
	t.Logf("with the right credentials the broker answers (%d topics), none named %s*", len(md.Topics), prefix)
}

// errorLine is the line of out that holds want, for the log.
func errorLine(out, want string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, want) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// metadataV4 is a plaintext Kafka Metadata request (v4, all topics, the
// same probe scripts/kafka.sh sends to the plain broker): size 26 | api
// key 3 | version 4 | correlation id 7 | client id "atlas-probe" | topics
// null | allow auto-creation false.
var metadataV4 = []byte("\x00\x00\x00\x1a\x00\x03\x00\x04\x00\x00\x00\x07\x00\x0batlas-probe\xff\xff\xff\xff\x00")

// kafkaAnswer sends req over conn and reports whether a Kafka response
// (size, then correlation id 7) comes back within 5 s, and what happened.
func kafkaAnswer(conn net.Conn, req []byte) (bool, string) {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(req); err != nil {
		return false, "write: " + err.Error()
	}
	var head [8]byte
	n, err := io.ReadFull(conn, head[:])
	if err != nil {
		return false, fmt.Sprintf("read %d bytes, then: %v", n, err)
	}
	return bytes.Equal(head[4:8], []byte{0, 0, 0, 7}), "a Kafka response"
}

// TestNoPortOfTheSecureBrokerAnswersPlaintext: the Metadata request that
// the plain broker answers gets no answer from either listener of the
// secure one, and its controller port (TLS with client certificates) also
// turns away a TLS client that has the CA but no certificate: nothing but
// the node itself, holding the broker's key, can talk to its controller.
func TestNoPortOfTheSecureBrokerAnswersPlaintext(t *testing.T) {
	props, err := os.ReadFile(filepath.Join(secureDir(), "server.properties"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^listeners=SASL_SSL://([0-9.:]+),CONTROLLER://([0-9.:]+)$`).FindSubmatch(props)
	if m == nil {
		t.Fatalf("no listeners=SASL_SSL://…,CONTROLLER://… line in %s", filepath.Join(secureDir(), "server.properties"))
	}
	client, controller := string(m[1]), string(m[2])

	// The probe is right: the plain broker answers it.
	if plain := os.Getenv("ATLAS_KAFKA_BROKERS"); plain != "" && plain != client && os.Getenv("ATLAS_KAFKA_TLS") != "true" {
		conn, err := net.DialTimeout("tcp", strings.Split(plain, ",")[0], 3*time.Second)
		if err != nil {
			t.Fatalf("the plain broker at %s: %v", plain, err)
		}
		ok, what := kafkaAnswer(conn, metadataV4)
		conn.Close()
		if !ok {
			t.Fatalf("the plain broker at %s does not answer the probe (%s): the probe is wrong", plain, what)
		}
		t.Logf("control: the plain broker at %s answers the plaintext Metadata request", plain)
	}

	for _, addr := range []string{client, controller} {
		conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			t.Fatalf("cannot connect to %s: %v", addr, err)
		}
		ok, what := kafkaAnswer(conn, metadataV4)
		conn.Close()
		if ok {
			t.Fatalf("%s answered a plaintext Metadata request", addr)
		}
		t.Logf("%s: no answer to a plaintext Metadata request (%s)", addr, what)
	}

	pem, err := os.ReadFile(secureEnv["ATLAS_KAFKA_CA_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", controller, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err == nil {
		// With TLS 1.3 the server checks the client's certificate after the
		// client's side of the handshake is done: the refusal arrives as
		// an alert on the first read.
		ok, what := kafkaAnswer(conn, metadataV4)
		conn.Close()
		if ok {
			t.Fatalf("the controller at %s answered a TLS client without a certificate", controller)
		}
		err = errors.New(what)
	}
	if !strings.Contains(err.Error(), "certificate required") && !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("TLS without a client certificate to the controller at %s: %v, want the server's refusal of a missing certificate", controller, err)
	}
	t.Logf("%s: a TLS client without a certificate is refused: %v", controller, err)
}
