package cosmic

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/upstream"
)

// decode parses the answer once; it must still tell what routeNotFound
// tells, for every shape of answer.
func TestDecodeRouteNotFound(t *testing.T) {
	c, err := New(Config{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, body string
		route      bool // reported as Route not found
		ok         bool // decoded
	}{
		{"object", `{"object":{"id":"x"}}`, false, true},
		{"route not found", `{"message":"Route not found","status":200}`, true, false},
		{"route not found, other case", `{"Message":"Route not found"}`, true, false},
		{"another message", `{"message":"nope","object":{"id":"x"}}`, false, true},
		{"message not a string", `{"message":5,"object":{"id":"x"}}`, false, true},
		{"no envelope key", `{"objects":[]}`, false, false},
		{"not an object", `[1]`, false, false},
		{"null", `null`, false, false},
		{"not JSON", `<html>`, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := routeNotFound([]byte(tc.body)); got != tc.route {
				t.Fatalf("routeNotFound = %v, want %v (the table is wrong)", got, tc.route)
			}
			var v json.RawMessage
			err := c.decode(&upstream.Response{Status: 200, Body: []byte(tc.body)}, "object", &v, EnvAPIURL)
			var ue *provider.UpstreamError
			switch {
			case tc.ok && err != nil:
				t.Errorf("decode: %v", err)
			case !tc.ok && (!errors.As(err, &ue) || !errors.Is(err, provider.ErrUnavailable)):
				t.Errorf("decode err = %v, want an unavailable UpstreamError", err)
			case tc.route && !strings.Contains(err.Error(), "Route not found"):
				t.Errorf("decode err = %v, want Route not found", err)
			case !tc.route && err != nil && strings.Contains(err.Error(), "Route not found"):
				t.Errorf("decode err = %v, not a Route not found", err)
			}
		})
	}
}
