package embeddings

import (
	"errors"
	"fmt"
	"math"
)

// Config sets the learner. Zero fields take the documented defaults, which
// are the values `atlas eval recs` measured best on MovieLens and the
// simulator (see the package doc for the numbers).
type Config struct {
	// Dim is the dimension of the dense taste and title vectors. Default 32.
	Dim int
	// Window is how many of a profile's most recent plays form its context:
	// they are the plays a new play co-occurs with, and the ones a
	// recommendation is scored from. Default 40.
	Window int
	// Decay weighs the context by recency: the k-th most recent play
	// (k = 0 for the latest) counts Decay^k, both when a new play is
	// counted against it and when recommendations are scored. Default 0.9.
	Decay float64
	// Reverse is the weight of "j after i" relative to "i after j" in the
	// row of i: 1 is symmetric co-occurrence, 0 a pure sequence model.
	// Default 0.5.
	Reverse float64
	// Alpha is the popularity normalisation of a candidate: the weight from
	// j to i is divided by n_j^(1−Alpha) · n_i^Alpha (0.5 is cosine).
	// Default 0.3.
	Alpha float64
	// PopWeight adds PopWeight × log(1 + first plays of the title) to every
	// score: popularity ranks titles nothing co-occurs with and breaks ties.
	// Default 0.03.
	PopWeight float64
	// DenseWeight adds DenseWeight × (taste vector · title vector) to every
	// score. Default 0.3: on MovieLens it costs 2 % of recall (sequences
	// carry the signal there), on the simulator (static planted tastes) it
	// lifts the learner above popularity; see the package doc. A negative
	// value turns the blend off.
	DenseWeight float64
	// Intents is how many recent browse selects and add-to-lists a profile
	// keeps as a weaker signal, each weighing IntentWeight of a play.
	// Defaults 8 and 0.3.
	Intents      int
	IntentWeight float64
	// Seed fixes the random start of the dense refresh. Default 1.
	Seed uint64
}

// Defaults returns c with zero fields set to their defaults.
func (c Config) Defaults() Config {
	if c.Dim == 0 {
		c.Dim = 32
	}
	if c.Window == 0 {
		c.Window = 40
	}
	if c.Decay == 0 {
		c.Decay = 0.9
	}
	if c.Reverse == 0 {
		c.Reverse = 0.5
	}
	if c.Alpha == 0 {
		c.Alpha = 0.3
	}
	if c.PopWeight == 0 {
		c.PopWeight = 0.03
	}
	if c.DenseWeight == 0 {
		c.DenseWeight = 0.3
	}
	if c.Intents == 0 {
		c.Intents = 8
	}
	if c.IntentWeight == 0 {
		c.IntentWeight = 0.3
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	c = c.Defaults()
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	switch {
	case c.Dim < 1 || c.Dim > 255:
		return fmt.Errorf("embeddings: Dim must be between 1 and 255, got %d", c.Dim)
	case c.Window < 1 || c.Window > 255:
		return fmt.Errorf("embeddings: Window must be between 1 and 255, got %d", c.Window)
	case c.Intents < 0 || c.Intents > 255:
		return fmt.Errorf("embeddings: Intents must be between 0 and 255, got %d", c.Intents)
	case bad(c.Decay) || c.Decay <= 0 || c.Decay > 1:
		return errors.New("embeddings: Decay must be in (0, 1]")
	case bad(c.Reverse) || c.Reverse < 0 || c.Reverse > 1:
		return errors.New("embeddings: Reverse must be in [0, 1]")
	case bad(c.Alpha) || c.Alpha < 0 || c.Alpha > 1:
		return errors.New("embeddings: Alpha must be in [0, 1]")
	case bad(c.PopWeight) || c.PopWeight < 0, bad(c.DenseWeight),
		bad(c.IntentWeight) || c.IntentWeight < 0:
		return errors.New("embeddings: weights must be finite and not negative")
	}
	return nil
}
