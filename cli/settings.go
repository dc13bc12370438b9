package cli

import (
	"fmt"

	"github.com/alecthomas/kong"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/config"
)

// Where a setting's value came from, in order of precedence.
const (
	fromFlag    = "flag"
	fromEnv     = "environment"
	fromEnvFile = "env file"
	fromDefault = "default"
)

// setting is one flag of the command as it was resolved.
type setting struct {
	flag   *kong.Flag
	value  string
	origin string
}

// settingsOf lists the command's flags that have a KEYGATE_* twin, with
// their values and where each came from, the way envResolver resolved
// them: the command line, then the process environment, then the env file
// (never for --env-file itself), then the default.
func settingsOf(kctx *kong.Context, env config.Env) []setting {
	given := map[*kong.Flag]bool{}
	for _, p := range kctx.Path {
		if p.Flag != nil && !p.Resolved {
			given[p.Flag] = true
		}
	}
	var out []setting
	for _, f := range kctx.Flags() {
		name := f.Tag.Get("envvar")
		if name == "" {
			continue
		}
		s := setting{flag: f, value: fmt.Sprint(kctx.FlagValue(f)), origin: fromDefault}
		switch _, src, inEnv := env.Get(name); {
		case given[f]:
			s.origin = fromFlag
		case f.Name == "env-file":
			if _, ok := env.Process(name); ok {
				s.origin = fromEnv
			}
		case inEnv && src == auth.SourceEnv:
			s.origin = fromEnv
		case inEnv:
			s.origin = fromEnvFile
		}
		out = append(out, s)
	}
	return out
}
