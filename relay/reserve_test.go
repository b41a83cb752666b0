package relay

import (
	"testing"
	"time"
)

func TestRetryAfterIsBounded(t *testing.T) {
	for _, c := range []struct {
		fails int
		want  time.Duration
	}{{1, 2 * time.Second}, {2, 4 * time.Second}, {3, 8 * time.Second}, {4, MaxRetry}, {50, MaxRetry}, {0, 2 * time.Second}} {
		if got := retryAfter(c.fails); got != c.want {
			t.Errorf("retryAfter(%d) = %s, want %s", c.fails, got, c.want)
		}
	}
}
