package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keygate/keygate/audit"
)

// auditCommand prints the audit journal, oldest first.
func auditCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	settings := commonSettings()
	var since, tool string
	var asJSON bool
	fs.StringVar(&since, "since", "", "only records from this time on: a duration back from now (24h) or an RFC 3339 time")
	fs.StringVar(&tool, "tool", "", "only records of this tool, e.g. credentials_rotate (failed HTTP authentication is \"http\")")
	fs.BoolVar(&asJSON, "json", false, "print the records as JSON lines")
	env, err := parseSettings(fs, settings, args)
	if err != nil {
		return err
	}
	cfg, err := buildConfig(settings, env)
	if err != nil {
		return err
	}
	f := audit.Filter{Tool: tool}
	if since != "" {
		if f.Since, err = parseSince(since, time.Now()); err != nil {
			return err
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		return audit.Read(cfg.AuditFile, f, func(r audit.Record) error { return enc.Encode(r) })
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKEY\tPROVIDER\tTOOL\tTARGET\tOUTCOME\tDETAIL")
	err = audit.Read(cfg.AuditFile, f, func(r audit.Record) error {
		detail := strings.TrimSpace(r.Detail + " " + r.Remote)
		if r.RotationID != "" {
			detail = strings.TrimSpace("rotation " + r.RotationID + " " + detail)
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Format(time.RFC3339), dash(r.Principal), dash(r.Provider),
			r.Tool, dash(r.Target), r.Outcome, dash(detail))
		return err
	})
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	return err
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("audit: --since must be a duration such as 24h or an RFC 3339 time")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
