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
	"github.com/keygate/keygate/textsafe"
)

// auditCommand prints the audit journal, oldest first.
func auditCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	settings := commonSettings()
	var since, tool string
	var asJSON, rotated bool
	fs.StringVar(&since, "since", "", "only records from this time on: a duration back from now (24h) or an RFC 3339 time")
	fs.StringVar(&tool, "tool", "", "only records of this tool, e.g. credentials_rotate (failed HTTP authentication is \"http\")")
	fs.BoolVar(&asJSON, "json", false, "print the records as JSON lines")
	fs.BoolVar(&rotated, "rotated", true, "also read the rotated journals (audit.jsonl.N), oldest first; --rotated=false reads the current one only")
	env, err := parseSettings(fs, settings, args)
	if err != nil {
		return err
	}
	cfg, err := buildConfig(settings, env)
	if err != nil {
		return err
	}
	opts := audit.ReadOptions{Filter: audit.Filter{Tool: tool}, Rotated: rotated,
		// A line that holds no record is named and passed over: it must
		// not hide the records after it.
		Skipped: func(s audit.SkippedLine) {
			fmt.Fprintf(stderr, "keygate audit: %s line %d %s\n", textsafe.Escape(s.File), s.Line, s.Reason)
		}}
	if since != "" {
		if opts.Since, err = parseSince(since, time.Now()); err != nil {
			return err
		}
	}
	if asJSON {
		// encoding/json escapes every control character.
		enc := json.NewEncoder(stdout)
		return audit.ReadWith(cfg.AuditFile, opts, func(r audit.Record) error { return enc.Encode(r) })
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKEY\tPROVIDER\tTOOL\tTARGET\tOUTCOME\tDETAIL")
	err = audit.ReadWith(cfg.AuditFile, opts, func(r audit.Record) error {
		var parts []string
		if r.RotationID != "" {
			parts = append(parts, "rotation "+r.RotationID)
		}
		for _, p := range []string{r.Detail, r.Remote} {
			if p != "" {
				parts = append(parts, p)
			}
		}
		if r.Count > 1 {
			parts = append(parts, fmt.Sprintf("(%d times, the last at %s)", r.Count, r.Last.Format(time.RFC3339)))
		}
		detail := strings.Join(parts, " ")
		// Every field is stored text, some of it from callers: printed
		// raw, a control character could forge a row or drive the terminal.
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Format(time.RFC3339), cell(r.Principal), cell(r.Provider),
			cell(r.Tool), cell(r.Target), cell(r.Outcome), cell(detail))
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

// cell is stored text made safe for one cell of a table: controls spelled
// out, "-" for nothing.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return textsafe.Escape(s)
}
