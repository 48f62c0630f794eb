package engine

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/segmentio/kafka-go"
)

func TestJoinErrorsThatRetryingCannotFixEndTheRole(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("joining: %w", kafka.SASLAuthenticationFailed), true},
		{kafka.GroupAuthorizationFailed, true},
		{fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), true},
		{kafka.GroupCoordinatorNotAvailable, false},
		{kafka.NotCoordinatorForGroup, false},
		{io.EOF, false},
		{errors.New("connection refused"), false},
	} {
		if got := refused(c.err); got != c.want {
			t.Errorf("refused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
