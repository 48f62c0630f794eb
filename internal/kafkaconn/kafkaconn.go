// Package kafkaconn turns Atlas's Kafka connection settings (brokers, TLS,
// SASL/SCRAM) into the kafka-go values every role uses: a Transport for
// writers and clients, a Dialer for readers and consumer groups.
//
// It exists so that the same binary runs against the local broker started by
// scripts/kafka.sh and against a production cluster, by configuration only.
package kafkaconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Config says how to reach the Kafka cluster.
type Config struct {
	// Brokers are bootstrap addresses, host:port. Default 127.0.0.1:9092.
	Brokers []string
	// ClientID identifies Atlas in broker logs and quotas. Default "atlas".
	ClientID string
	// TLS enables TLS. CAFile, when set, is the PEM bundle that signs the
	// brokers' certificates; otherwise the system roots are used.
	TLS    bool
	CAFile string
	// SASLMechanism is "", "SCRAM-SHA-512", "SCRAM-SHA-256" or "PLAIN".
	// SASLUser and SASLPassword are its credentials. SASLPasswordFile,
	// instead of SASLPassword, names a file holding the password (one
	// trailing newline is ignored); it is read each time a Transport or
	// Dialer is built, so the password stays out of the environment and
	// the process list.
	SASLMechanism    string
	SASLUser         string
	SASLPassword     string
	SASLPasswordFile string
	// DialTimeout bounds connecting to one broker. Default 10 s.
	DialTimeout time.Duration
}

// DefaultBrokers is where scripts/kafka.sh starts the local broker.
const DefaultBrokers = "127.0.0.1:9092"

func (c Config) withDefaults() Config {
	if len(c.Brokers) == 0 {
		c.Brokers = []string{DefaultBrokers}
	}
	if c.ClientID == "" {
		c.ClientID = "atlas"
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	return c
}

// ParseBrokers splits a comma-separated broker list, dropping blanks.
func ParseBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Validate reports settings that cannot work, naming the setting.
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return fmt.Errorf("invalid Kafka broker address %q: want host:port", b)
		}
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
		if c.SASLUser != "" || c.SASLPassword != "" || c.SASLPasswordFile != "" {
			return errors.New("Kafka SASL credentials are set but no SASL mechanism (want SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN)")
		}
	case "SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN":
		if c.SASLUser == "" || (c.SASLPassword == "" && c.SASLPasswordFile == "") {
			return fmt.Errorf("Kafka SASL mechanism %s needs a user and a password", c.SASLMechanism)
		}
		if c.SASLPassword != "" && c.SASLPasswordFile != "" {
			return errors.New("both a Kafka SASL password and a password file are set: use one")
		}
	default:
		return fmt.Errorf("unknown Kafka SASL mechanism %q (want SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN)", c.SASLMechanism)
	}
	if c.CAFile != "" && !c.TLS {
		return errors.New("a Kafka CA file is set but TLS is off")
	}
	if c.DialTimeout < 0 {
		return errors.New("the Kafka dial timeout must not be negative")
	}
	return nil
}

// BrokerList returns the bootstrap brokers, defaults applied.
func (c Config) BrokerList() []string { return c.withDefaults().Brokers }

func (c Config) tlsConfig() (*tls.Config, error) {
	if !c.TLS {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read Kafka CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cannot use Kafka CA file %s: no PEM certificates in it", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func (c Config) mechanism() (sasl.Mechanism, error) {
	mech := strings.ToUpper(c.SASLMechanism)
	if mech == "" {
		return nil, nil
	}
	password := c.SASLPassword
	if c.SASLPasswordFile != "" {
		b, err := os.ReadFile(c.SASLPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read Kafka SASL password file: %w", err)
		}
		password = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if password == "" {
			return nil, fmt.Errorf("cannot use Kafka SASL password file %s: it is empty", c.SASLPasswordFile)
		}
	}
	switch mech {
	case "PLAIN":
		return plain.Mechanism{Username: c.SASLUser, Password: password}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, c.SASLUser, password)
	default:
		return scram.Mechanism(scram.SHA512, c.SASLUser, password)
	}
}

// Transport returns a kafka-go Transport for Writers and Clients. The
// caller owns it and should CloseIdleConnections when done.
func (c Config) Transport() (*kafka.Transport, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	t, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	m, err := c.mechanism()
	if err != nil {
		return nil, fmt.Errorf("cannot set up Kafka SASL: %w", err)
	}
	return &kafka.Transport{ClientID: c.ClientID, DialTimeout: c.DialTimeout, TLS: t, SASL: m}, nil
}

// Dialer returns a kafka-go Dialer for Readers and ConsumerGroups.
func (c Config) Dialer() (*kafka.Dialer, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	t, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	m, err := c.mechanism()
	if err != nil {
		return nil, fmt.Errorf("cannot set up Kafka SASL: %w", err)
	}
	return &kafka.Dialer{ClientID: c.ClientID, Timeout: c.DialTimeout, DualStack: true, TLS: t, SASLMechanism: m}, nil
}

// Client returns a kafka-go Client bound to the bootstrap brokers.
func (c Config) Client() (*kafka.Client, error) {
	t, err := c.Transport()
	if err != nil {
		return nil, err
	}
	return &kafka.Client{Addr: kafka.TCP(c.BrokerList()...), Transport: t}, nil
}
