package cli

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/alecthomas/kong"

	"github.com/keygate/keygate/config"
)

// helpValue is a flag's help with its default and its KEYGATE_* variable.
func helpValue(v *kong.Value) string {
	var notes []string
	if v.HasDefault && v.Default != "" && !v.IsBool() {
		notes = append(notes, "default "+v.Default)
	}
	if env := v.Tag.Get("envvar"); env != "" {
		notes = append(notes, "$"+env)
	}
	if len(notes) == 0 {
		return v.Help
	}
	return strings.TrimSuffix(v.Help, ".") + " (" + strings.Join(notes, "; ") + ")."
}

// printHelp is kong's help. keygate --help adds the help of serve, the
// default command, whose flags it takes; both end with the variables that
// are not flags: keygate's own token and each provider's.
func printHelp(options kong.HelpOptions, kctx *kong.Context) error {
	if err := kong.DefaultHelpPrinter(options, kctx); err != nil {
		return err
	}
	switch cmd := kctx.Selected(); {
	case cmd == nil:
		serve, err := kong.Trace(kctx.Kong, []string{"serve"})
		if err != nil {
			return err
		}
		fmt.Fprintln(kctx.Stdout)
		if err := kong.DefaultHelpPrinter(options, serve); err != nil {
			return err
		}
	case cmd.Name != "serve":
		return nil
	}
	return writeEnvironment(kctx.Stdout)
}

// writeEnvironment lists KEYGATE_TOKEN and every provider's variables, one
// line each.
func writeEnvironment(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nEnvironment (besides the flags' KEYGATE_* twins; the process environment wins over the env file):")
	fmt.Fprintf(tw, "  %s\t%s\n", config.TokenVariable.Name, config.TokenVariable.Meaning)
	fmt.Fprintln(tw, "\nProviders (local, the embedded store, needs nothing; a remote provider is configured when one of its keys is set):")
	for _, p := range config.Providers {
		fmt.Fprintf(tw, "  %s\t\n", p.Title)
		for _, v := range p.Variables {
			fmt.Fprintf(tw, "    %s\t%s\n", v.Name, v.Meaning)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(buf.String()) {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}
