package upstream

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CheckBaseURL validates a provider base URL held in the variable name and
// returns it without a trailing slash. Plain http is accepted only for
// loopback hosts (a fake, a tunnel): every request carries a key. Errors
// name the variable, never the value.
func CheckBaseURL(name, v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%s is not an absolute URL such as https://api.example.com", name)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return "", fmt.Errorf("%s must use https (plain http is allowed only for loopback hosts)", name)
		}
	default:
		return "", fmt.Errorf("%s must be an http(s) URL", name)
	}
	if u.User != nil {
		return "", fmt.Errorf("%s must not contain a user name or password", name)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("%s must not have a query string or fragment", name)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
