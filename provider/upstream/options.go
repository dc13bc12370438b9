package upstream

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// Options are the collaborators every provider client takes; a zero value
// is ready for production use.
type Options struct {
	// HTTP sends the requests; nil: NewHTTPClient(0), which never follows
	// a redirect to another host.
	HTTP *http.Client
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Logger gets one debug line per request; nil: discard.
	Logger *slog.Logger
	// Sleep waits d or until ctx is done; nil: Sleep. Tests replace it
	// together with Now to move a fake clock instead of waiting.
	Sleep func(ctx context.Context, d time.Duration) error
}

// WithDefaults returns o with every nil collaborator filled in.
func (o Options) WithDefaults() Options {
	if o.HTTP == nil {
		o.HTTP = NewHTTPClient(0)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Sleep == nil {
		o.Sleep = Sleep
	}
	return o
}

// Sleep waits d, or until ctx is done and then returns its error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
