package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/textsafe"
)

// AuditCmd prints the audit journal, oldest first.
type AuditCmd struct {
	config.Common
	Since   string `placeholder:"WHEN" help:"Only records from this time on: a duration back from now (24h) or an RFC 3339 time."`
	Tool    string `placeholder:"TOOL" help:"Only records of this tool, e.g. credentials_rotate (failed HTTP authentication is \"http\")."`
	JSON    bool   `name:"json" help:"Print the records as JSON lines."`
	Rotated bool   `default:"true" help:"Also read the rotated journals (audit.jsonl.N), oldest first; --rotated=false reads the current one only."`
}

func (c *AuditCmd) Run(rt *invocation) error {
	env, err := rt.env(c.EnvFile)
	if err != nil {
		return err
	}
	cfg, err := c.Config(env)
	if err != nil {
		return err
	}
	opts := audit.ReadOptions{Filter: audit.Filter{Tool: c.Tool}, Rotated: c.Rotated,
		// A line that holds no record is named and passed over: it must
		// not hide the records after it.
		Skipped: func(s audit.SkippedLine) {
			fmt.Fprintf(rt.Err, "keygate audit: %s line %d %s\n", textsafe.Escape(s.File), s.Line, s.Reason)
		}}
	if c.Since != "" {
		if opts.Since, err = parseSince(c.Since, time.Now()); err != nil {
			return err
		}
	}
	if c.JSON {
		// encoding/json escapes every control character.
		enc := json.NewEncoder(rt.Out)
		return app.ReadJournal(rt.ctx, cfg, opts, func(r audit.Record) error { return enc.Encode(r) })
	}
	return printJournal(rt.Out, func(fn func(audit.Record) error) error { return app.ReadJournal(rt.ctx, cfg, opts, fn) })
}

// printJournal prints the journal as a table. Every field is stored text,
// some of it from callers: printed raw, a control character could forge a
// row or drive the terminal, so each is spelled out.
func printJournal(w io.Writer, read func(func(audit.Record) error) error) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKEY\tPROVIDER\tTOOL\tTARGET\tOUTCOME\tDETAIL")
	err := read(func(r audit.Record) error {
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Format(time.RFC3339), cell(r.Principal), cell(r.Provider),
			cell(r.Tool), cell(r.Target), cell(r.Outcome), cell(detail(r)))
		return err
	})
	return errors.Join(err, tw.Flush())
}

// detail is a record's rotation, detail, remote and count in one cell.
func detail(r audit.Record) string {
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
	return strings.Join(parts, " ")
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
