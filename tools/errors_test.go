package tools

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/provider"
)

// storeLost is a provider.PublicError as the Postgres store returns it:
// its Error names the database, its PublicText does not.
type storeLost struct{ commit bool }

func (e storeLost) Error() string {
	return e.PublicText() + ": failed to connect to `user=keygate database=prod`: 10.0.0.7:5432: connection refused"
}

func (e storeLost) PublicText() string { return "the store's database is unreachable" }

func (e storeLost) Unwrap() []error {
	if e.commit {
		return []error{provider.ErrUnavailable, provider.ErrOutcomeUnknown}
	}
	return []error{provider.ErrUnavailable}
}

// TestProviderErrorsTellTheCallerOnlyWhatItNeeds: the caller learns what
// happened and what to do; where keygate's database is stays in the log;
// a write whose outcome is unknown is never answered "retry later".
func TestProviderErrorsTellTheCallerOnlyWhatItNeeds(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		want      string
		wantNot   []string
		wantNoFix string
	}{
		{"store unreachable", fmt.Errorf("creating object: %w", storeLost{}), "could not be reached", []string{"10.0.0.7", "database=prod"}, ""},
		{"commit lost", fmt.Errorf("committing: %w", storeLost{commit: true}), "outcome is unknown", []string{"10.0.0.7"}, "retry later"},
		{"remote provider down", &provider.UpstreamError{Provider: "cosmic", Status: 503, Kind: provider.ErrUnavailable}, "cosmic answered 503", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := providerError(tc.err, "")
			if err != nil || res == nil || !res.IsError {
				t.Fatalf("providerError: %v, %v", res, err)
			}
			text := res.Content[0].(mcp.TextContent).Text
			if !strings.Contains(text, tc.want) {
				t.Errorf("%q lacks %q", text, tc.want)
			}
			for _, s := range tc.wantNot {
				if strings.Contains(text, s) {
					t.Errorf("%q tells the caller %q", text, s)
				}
			}
			if tc.wantNoFix != "" && strings.Contains(text, tc.wantNoFix) {
				t.Errorf("%q says %q", text, tc.wantNoFix)
			}
		})
	}
	if !errors.Is(storeLost{commit: true}, provider.ErrOutcomeUnknown) {
		t.Fatal("the fixture does not match ErrOutcomeUnknown")
	}
}
