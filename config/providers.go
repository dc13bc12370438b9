package config

import (
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider/agrenting"
	"github.com/keygate/keygate/provider/cencori"
	"github.com/keygate/keygate/provider/cockpit"
	"github.com/keygate/keygate/provider/cosmic"
)

// Variable is an environment variable keygate reads, with what it means in
// one line.
type Variable struct {
	Name, Meaning string
}

// Provider is a remote provider's configuration: the variables it reads.
// A provider is configured when one of its credential variables is set; it
// is rebuilt on reload only when one of its variables changes value.
type Provider struct {
	Name, Title string
	Variables   []Variable
}

// VariableNames lists the provider's variables.
func (p Provider) VariableNames() []string {
	out := make([]string, len(p.Variables))
	for i, v := range p.Variables {
		out[i] = v.Name
	}
	return out
}

// TokenVariable is keygate's own credential.
var TokenVariable = Variable{auth.TokenVar, "keygate's own token (stdio): from the environment, else the env file, where the first run writes it"}

// Providers are the remote providers, in the order keygate lists them
// after local; the meanings are README's Providers section in one line
// each.
var Providers = []Provider{
	{Name: cosmic.Name, Title: "Cosmic (headless CMS)", Variables: []Variable{
		{cosmic.EnvBucketSlug, "bucket slug (required with bucket keys)"},
		{cosmic.EnvReadKey, "bucket read key, sent as the read_key query parameter on reads"},
		{cosmic.EnvWriteKey, "bucket write key, Authorization: Bearer on writes"},
		{cosmic.EnvPAT, "personal access token (cos_...) for the dashboard API"},
		{cosmic.EnvAgentKey, "agent key (agk_...): auth_whoami shows its claim status and limits"},
		{cosmic.EnvAPIURL, "data API base URL (default " + cosmic.DefaultAPIURL + ")"},
		{cosmic.EnvDAPIURL, "dashboard API base URL (default " + cosmic.DefaultDAPIURL + ")"},
	}},
	{Name: cockpit.Name, Title: "Cockpit (self-hosted CMS)", Variables: []Variable{
		{cockpit.EnvURL, "the Cockpit site, e.g. https://cms.example.com"},
		{cockpit.EnvAPIKey, "API-... custom key or USR-... user key, sent only in the api-key header"},
		{cockpit.EnvModels, "comma-separated models to expose (Cockpit's API cannot list them)"},
	}},
	{Name: cencori.Name, Title: "Cencori (AI gateway)", Variables: []Variable{
		{cencori.EnvAPIKey, "csk_ secret key (csk_test_ in test) or cake_ agent key; cpk_ publishable keys are refused"},
		{cencori.EnvAPIURL, "REST base URL (default " + cencori.DefaultAPIURL + "; self-hosted: https://host/api)"},
		{cencori.EnvGatewayURL, "gateway base URL (default " + cencori.DefaultGatewayURL + ")"},
		{cencori.EnvMemoryUserID, "whose memories keygate reads and writes (default " + cencori.DefaultMemoryUserID + ")"},
		{cencori.EnvMemoryNamespace, "the memory namespace keygate writes to and lists (default: Cencori's)"},
	}},
	{Name: agrenting.Name, Title: "Agrenting (agent platform)", Variables: []Variable{
		{agrenting.EnvAPIKey, "agent key, sent as X-API-Key (exchanged for a session token)"},
		{agrenting.EnvToken, "or a user token (ap_...), Bearer, with " + agrenting.EnvAgentID},
		{agrenting.EnvAgentID, "the agent a user token acts as (X-Agent-ID)"},
		{agrenting.EnvAPIURL, "API base URL (default " + agrenting.DefaultAPIURL + ")"},
		{agrenting.EnvRevokePath, "override of the undocumented revoke path (default " + agrenting.DefaultRevokePath + ")"},
		{"AGRENTING_ROTATE_PATH", "no longer read: keygate refuses to start while it is set"},
	}},
}
