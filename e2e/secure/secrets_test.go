//go:build integration

package secure

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestTheSecureBrokersSecretsAreFilesOfMode600: the passwords made by
// scripts/kafka.sh --secure live in files of mode 600 in a folder of mode
// 700; the generated server.properties (which must hold the keystore and
// broker passwords) and the keystore are mode 600; the CA's key is gone;
// and the client's password is in plain text nowhere else under the
// instance's folder: not in the config, the logs, the metadata log or the
// env file.
func TestTheSecureBrokersSecretsAreFilesOfMode600(t *testing.T) {
	dir := secureDir()
	mode := func(path string, want fs.FileMode) {
		t.Helper()
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, st.Mode().Perm(), want)
		}
	}
	mode(filepath.Join(dir, "secrets"), 0o700)
	for _, name := range []string{"atlas", "atlas-broker", "keystore"} {
		mode(filepath.Join(dir, "secrets", name+".password"), 0o600)
	}
	mode(secureEnv["ATLAS_KAFKA_SASL_PASSWORD_FILE"], 0o600)
	mode(filepath.Join(dir, "server.properties"), 0o600)
	mode(filepath.Join(dir, "tls", "broker.p12"), 0o600)
	if _, err := os.Stat(filepath.Join(dir, "tls", "ca.key")); !os.IsNotExist(err) {
		t.Errorf("the CA's key %s exists (%v): anyone who reads it can issue certificates the clients trust", filepath.Join(dir, "tls", "ca.key"), err)
	}

	password, err := os.ReadFile(secureEnv["ATLAS_KAFKA_SASL_PASSWORD_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(password))
	if len(secret) < 32 {
		t.Fatalf("the client password has %d characters, want at least 32 (128 random bits in hex)", len(secret))
	}
	scanned := 0
	secrets := map[string]string{"the client's SCRAM password": secret}
	found := scan(t, dir, func(path string) bool {
		return !strings.HasPrefix(path, filepath.Join(dir, "secrets")+string(filepath.Separator))
	}, secrets, &scanned)
	// The env file `start` writes beside the folder names the password
	// file, not the password.
	found = append(found, scan(t, dir+".env", func(string) bool { return true }, secrets, &scanned)...)
	for _, f := range found {
		t.Errorf("%s", f)
	}
	t.Logf("%s: secrets in files of mode 600 under secrets/ (mode 700), server.properties and broker.p12 mode 600, no CA key; "+
		"%d other files scanned, the client's password in none", dir, scanned)
}

// TestClickHouseConfigsHoldNoPlainTextPassword: scripts/clickhouse.sh
// gives the server only the SHA-256 of each password. Its config files,
// the preprocessed copies the server writes and its logs hold none of the
// three passwords in plain text; the files that must hold them
// (passwords.env and the clickhouse-client configs) are mode 600; and
// users.xml has each password's SHA-256. (What each user may do is tested
// in schemas/warehouse and dashboard: the reader's INSERT, ALTER and DROP
// and the writer's DROP and ALTER are refused there.)
func TestClickHouseConfigsHoldNoPlainTextPassword(t *testing.T) {
	if os.Getenv("ATLAS_EXTERNAL_SERVICES") == "1" {
		t.Skip("ATLAS_EXTERNAL_SERVICES=1: the ClickHouse server is not one scripts/clickhouse.sh configured, so its files are not this checkout's to check")
	}
	dir := filepath.Join(runDir(), "clickhouse")
	passwordsFile := filepath.Join(dir, "passwords.env")
	b, err := os.ReadFile(passwordsFile)
	if err != nil {
		t.Fatalf("cannot read the passwords scripts/clickhouse.sh made: %v (run scripts/clickhouse.sh start)", err)
	}
	passwords := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") && v != "" {
			passwords[k] = v
		}
	}
	if len(passwords) != 3 {
		t.Fatalf("%s holds %d passwords, want 3 (admin, writer, reader)", passwordsFile, len(passwords))
	}
	// They are the passwords the tests use, so the scan looks for the
	// right strings.
	for env, file := range map[string]string{"ATLAS_CLICKHOUSE_ADMIN_PASSWORD": "ATLAS_CLICKHOUSE_ADMIN_PASSWORD",
		"ATLAS_CLICKHOUSE_PASSWORD": "ATLAS_CLICKHOUSE_WRITER_PASSWORD", "ATLAS_CLICKHOUSE_READER_PASSWORD": "ATLAS_CLICKHOUSE_READER_PASSWORD"} {
		if v := os.Getenv(env); v != passwords[file] {
			t.Fatalf("%s is not the %s of %s: the test would scan for other passwords than the server's", env, file, passwordsFile)
		}
	}

	users, err := os.ReadFile(filepath.Join(dir, "users.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range passwords {
		sum := sha256.Sum256([]byte(p))
		if !bytes.Contains(users, []byte("<password_sha256_hex>"+hex.EncodeToString(sum[:])+"</password_sha256_hex>")) {
			t.Errorf("users.xml has no <password_sha256_hex> of %s", name)
		}
	}

	holders := []string{passwordsFile}
	clients, _ := filepath.Glob(filepath.Join(dir, "client-*.xml"))
	holders = append(holders, clients...)
	for _, f := range holders {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s holds passwords and has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	isHolder := map[string]bool{}
	for _, f := range holders {
		isHolder[f] = true
	}
	scanned := 0
	found := scan(t, dir, func(path string) bool {
		if isHolder[path] {
			return false
		}
		// Table data is not configuration; the server's preprocessed
		// copies of its configs are kept under data/ and are scanned.
		rel, _ := filepath.Rel(dir, path)
		return !strings.HasPrefix(rel, "data"+string(filepath.Separator)) ||
			strings.HasPrefix(rel, filepath.Join("data", "preprocessed_configs")+string(filepath.Separator))
	}, passwords, &scanned)
	for _, f := range found {
		t.Errorf("%s", f)
	}
	if scanned < 3 {
		t.Fatalf("scanned only %d files under %s: want at least config.xml, users.xml and a log", scanned, dir)
	}
	t.Logf("%s: %d files scanned (configs, preprocessed configs, logs), no password in plain text; users.xml holds the SHA-256 of all 3; "+
		"passwords.env and %d client configs mode 600", dir, scanned, len(clients))
}

// runDir is $ATLAS_RUN_DIR as scripts/lib.sh computes it.
func runDir() string {
	if d := os.Getenv("ATLAS_RUN_DIR"); d != "" {
		return d
	}
	tmp := os.Getenv("TMPDIR")
	if tmp == "" {
		tmp = "/tmp"
	}
	return filepath.Join(tmp, "atlas-"+strconv.Itoa(os.Getuid()))
}

// scan reads every regular file under dir that keep accepts and returns a
// line for each one that contains one of secrets (name → value).
func scan(t *testing.T, dir string, keep func(path string) bool, secrets map[string]string, scanned *int) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !keep(path) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		*scanned++
		for name, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				found = append(found, path+" holds "+name+" in plain text")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("cannot scan %s: %v", dir, err)
	}
	return found
}
