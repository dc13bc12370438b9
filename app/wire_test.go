package app

import (
	"slices"
	"testing"

	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/tools"
	"github.com/keygate/keygate/transport"
)

// TestConfigDefaultsAgreeWithTheirPackages: config holds its defaults
// itself (it imports neither tools nor transport); they must be the
// values those packages use.
func TestConfigDefaultsAgreeWithTheirPackages(t *testing.T) {
	if !slices.Equal(config.Toolsets, tools.AllToolsets) {
		t.Errorf("config.Toolsets %v, tools.AllToolsets %v", config.Toolsets, tools.AllToolsets)
	}
	if config.DefaultExpiryWarning != tools.DefaultExpiryWarning {
		t.Errorf("expiry warning %v vs %v", config.DefaultExpiryWarning, tools.DefaultExpiryWarning)
	}
	if config.DefaultMaxBodyBytes != int64(transport.DefaultMaxBodyBytes) {
		t.Errorf("max body %d vs %d", config.DefaultMaxBodyBytes, transport.DefaultMaxBodyBytes)
	}
}

// TestEveryProviderHasABuilder: the providers config lists (and the help
// shows) are the ones keygate can build, and no other.
func TestEveryProviderHasABuilder(t *testing.T) {
	for _, p := range config.Providers {
		if builders[p.Name] == nil {
			t.Errorf("no builder for %s", p.Name)
		}
	}
	if len(builders) != len(config.Providers) {
		t.Errorf("%d builders for %d providers", len(builders), len(config.Providers))
	}
}
