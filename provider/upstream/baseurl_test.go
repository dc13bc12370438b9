package upstream

import (
	"strings"
	"testing"
)

func TestCheckBaseURL(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://api.example.com/v3/", "https://api.example.com/v3", true},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"http://localhost/api", "http://localhost/api", true},
		{"http://[::1]:9/x", "http://[::1]:9/x", true},
		{"http://cms.lan", "", false},
		{"ftp://example.com", "", false},
		{"https://user:SECRETPW@example.com", "", false},
		{"https://example.com/?key=SECRETKEY", "", false},
		{"example.com", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, err := CheckBaseURL("X_URL", tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("CheckBaseURL(%q) = %q, %v", tc.in, got, err)
		}
		if err != nil && (!strings.Contains(err.Error(), "X_URL") || strings.Contains(err.Error(), "SECRET")) {
			t.Errorf("error %q must name the variable and not the value", err)
		}
	}
}
