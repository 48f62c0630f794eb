package anomaly

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// StuffingConfig tunes the credential-stuffing detector. Zero fields take
// the defaults in brackets.
type StuffingConfig struct {
	// Window is the sliding window of distinct accounts per network [5m].
	Window time.Duration
	// MinAccounts distinct accounts from one /24 within Window are
	// credential stuffing [10; a household's network carries one account,
	// a shared office or campus network a few].
	MinAccounts int
	// MaxAccountsPerNet caps the accounts remembered per network [256].
	MaxAccountsPerNet int
	// Quiet resolves an incident after this long under MinAccounts [10m].
	Quiet time.Duration
	// MaxNetworks caps the networks held [1,000,000].
	MaxNetworks int
}

func (c StuffingConfig) withDefaults() StuffingConfig {
	def(&c.Window, 5*time.Minute)
	defInt(&c.MinAccounts, 10)
	defInt(&c.MaxAccountsPerNet, 256)
	def(&c.Quiet, 10*time.Minute)
	defInt(&c.MaxNetworks, 1_000_000)
	return c
}

// Stuffing detects credential stuffing in the network view: many distinct
// accounts active from one client network in a short window. Browse
// events (sign-in lands on the browse UI) and playback starts count.
type Stuffing struct {
	cfg  StuffingConfig
	nets *keyed[stuffNet]
}

type stuffNet struct {
	accounts []stuffAcct
}

type stuffAcct struct {
	id          string
	first, last int64
}

// NewStuffing returns a credential-stuffing detector.
func NewStuffing(cfg StuffingConfig) *Stuffing {
	cfg = cfg.withDefaults()
	return &Stuffing{cfg: cfg, nets: newKeyed[stuffNet](cfg.MaxNetworks)}
}

// Kind returns "credential_stuffing".
func (*Stuffing) Kind() string { return KindCredentialStuffing }

// View returns ViewNetwork.
func (*Stuffing) View() View { return ViewNetwork }

// Wants browse events and playback starts.
func (*Stuffing) Wants(rec schemas.Record) bool {
	switch v := rec.(type) {
	case *schemas.Browse:
		return true
	case *schemas.Playback:
		return v.Kind == schemas.PlayStart
	}
	return false
}

// LookBack returns the window.
func (s *Stuffing) LookBack() time.Duration { return s.cfg.Window }

// Quiet returns the configured quiet period.
func (s *Stuffing) Quiet() time.Duration { return s.cfg.Quiet }

// Observe counts the event's account on its network and judges the
// network.
func (s *Stuffing) Observe(e *Event) Verdict {
	v := Verdict{Subject: e.Subject, At: e.Time}
	if e.Env == nil || e.Env.AccountID == "" {
		return v
	}
	n := s.nets.touch(e.Subject, e.Time, func() stuffNet { return stuffNet{} })
	from := e.Time - ms(s.cfg.Window)
	n.accounts = slices.DeleteFunc(n.accounts, func(a stuffAcct) bool { return a.last < from })
	i := slices.IndexFunc(n.accounts, func(a stuffAcct) bool { return a.id == e.Env.AccountID })
	if i < 0 {
		if len(n.accounts) >= s.cfg.MaxAccountsPerNet {
			n.accounts = slices.Delete(n.accounts, 0, 1)
		}
		n.accounts = append(n.accounts, stuffAcct{id: e.Env.AccountID, first: e.Time})
		i = len(n.accounts) - 1
	}
	n.accounts[i].last = e.Time
	if len(n.accounts) < s.cfg.MinAccounts {
		return v
	}
	v.Active = true
	v.Severity = schemas.SeverityHigh
	if len(n.accounts) >= 3*s.cfg.MinAccounts {
		v.Severity = schemas.SeverityCritical
	}
	v.Score = float64(len(n.accounts))
	v.Start = e.Time
	for _, a := range n.accounts {
		v.Start = min(v.Start, a.first)
	}
	v.WindowStart = from
	return v
}

// Advance forgets networks without activity in the window.
func (s *Stuffing) Advance(now int64, _ func(Verdict)) {
	s.nets.expire(now-ms(s.cfg.Window), nil)
}

// Evidence gives the number of accounts and the first ten of them.
func (s *Stuffing) Evidence(subject string) map[string]string {
	n := s.nets.get(subject)
	if n == nil {
		return nil
	}
	ids := make([]string, 0, len(n.accounts))
	first, last := int64(0), int64(0)
	for i, a := range n.accounts {
		ids = append(ids, a.id)
		if i == 0 || a.first < first {
			first = a.first
		}
		last = max(last, a.last)
	}
	slices.Sort(ids)
	sample := ids[:min(len(ids), 10)]
	return map[string]string{
		"accounts":        strconv.Itoa(len(ids)),
		"accounts_sample": strings.Join(sample, ","),
		"window_ms":       strconv.FormatInt(ms(s.cfg.Window), 10),
		"span_ms":         strconv.FormatInt(last-first, 10),
	}
}

// Size reports networks held and an estimate of their bytes.
func (s *Stuffing) Size() (int, int) {
	n := 0
	s.nets.each(func(k string, x *stuffNet) {
		n += keyedOverhead + len(k) + 24 + cap(x.accounts)*40
		for _, a := range x.accounts {
			n += len(a.id)
		}
	})
	return s.nets.len(), n
}
