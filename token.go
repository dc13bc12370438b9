package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/provider/local"
)

// tokenCommand is the admin CLI for the local store. It acts with the
// authority of whoever can open the store file, so it needs no token.
func tokenCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("token: want create, list or revoke\n%s", usage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("token "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	settings := commonSettings()
	var name, scopes, envVar string
	var days int
	switch sub {
	case "create":
		fs.StringVar(&name, "name", "", "what the token is for (required)")
		fs.StringVar(&scopes, "scopes", "", "comma-separated scopes, e.g. content:read,content:write:posts (required)")
		fs.IntVar(&days, "expires-in-days", 90, "lifetime in days, 1 to 365")
		fs.StringVar(&envVar, "env-var", "", "write the token into the env file under this variable instead of printing it")
	case "list", "revoke":
	default:
		return fmt.Errorf("token: unknown subcommand %q; want create, list or revoke", sub)
	}
	env, err := parseSettings(fs, settings, args)
	if err != nil {
		return err
	}
	cfg, err := buildConfig(settings, env)
	if err != nil {
		return err
	}
	store, err := local.Open(ctx, cfg.Store, local.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	// The CLI is the operator: the policy lets it do anything, and it goes
	// through the same service, delivery rules and lineage as the tools.
	svc := &credentials.Service{Store: store,
		Places: delivery.Places{EnvFile: cfg.EnvFile, KeysDir: filepath.Join(filepath.Dir(cfg.Store), "keys")}}
	ring := credentials.Ring{Provider: "local", Local: true}
	// Credential changes made here are journaled like those made through
	// the tools, and refused when the journal cannot be written.
	var journal *audit.Log
	if sub != "list" {
		if journal, err = audit.Open(cfg.AuditFile, nil); err != nil {
			return fmt.Errorf("token %s: %w", sub, err)
		}
		defer journal.Close()
	}
	record := func(target, outcome string) error {
		return journal.Write(audit.Record{Principal: "cli", Provider: "local", Tool: "token " + sub, Target: target, Outcome: outcome})
	}

	switch sub {
	case "create":
		if strings.TrimSpace(name) == "" {
			return fmt.Errorf("token create: --name is required")
		}
		sc, err := auth.ParseScopes(strings.Split(scopes, ","))
		if err != nil {
			return fmt.Errorf("token create: --scopes: %w", err)
		}
		if days < 1 || days > 365 {
			return fmt.Errorf("token create: --expires-in-days must be 1 to 365")
		}
		deliver := "reveal"
		if envVar != "" {
			deliver = "env:" + envVar
		}
		// Refuse a bad or taken variable before anything is made.
		dest, err := svc.Places.Parse(deliver)
		if err == nil {
			err = svc.Places.Preflight(dest)
		}
		if err != nil {
			return fmt.Errorf("token create: --env-var: %w", err)
		}
		if err := record(name, audit.OutcomeAttempt); err != nil {
			return fmt.Errorf("token create: refused, the audit journal cannot be written: %w", err)
		}
		issued, err := svc.Create(ctx, credentials.OperatorCaller, ring, credentials.CreateRequest{Name: name, Scopes: sc,
			ExpiresAt: time.Now().Add(time.Duration(days) * 24 * time.Hour), Deliver: deliver})
		if err != nil {
			return fmt.Errorf("token create: %w", err)
		}
		if err := record(issued.Key.ID, audit.OutcomeOK); err != nil {
			fmt.Fprintf(stderr, "warning: token %s was created but the audit journal could not record it: %v\n", issued.Key.ID, err)
		}
		if envVar != "" {
			fmt.Fprintf(stderr, "created token %s (%s) and wrote it to %s as %s\n", issued.Key.ID, issued.Key.Masked, cfg.EnvFile, envVar)
			return nil
		}
		fmt.Fprintf(stderr, "created token %s %q [%s], expires %s. It is shown once:\n", issued.Key.ID, name,
			strings.Join(issued.Key.Scopes, ", "), issued.Key.ExpiresAt.Format(time.DateOnly))
		fmt.Fprintln(stdout, issued.Secret.Reveal())
		return nil
	case "list":
		keys, err := svc.List(ctx, credentials.OperatorCaller, ring)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tTOKEN\tSCOPES\tCREATED\tEXPIRES\tLAST USED\tSTATE")
		for _, k := range keys {
			state := "active"
			switch {
			case !k.RevokedAt.IsZero():
				state = "revoked"
			case time.Now().After(k.ExpiresAt):
				state = "expired"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Masked, strings.Join(k.Scopes, ","),
				k.CreatedAt.Format(time.DateOnly), k.ExpiresAt.Format(time.DateOnly), dateOrDash(k.LastUsedAt), state)
		}
		return tw.Flush()
	default: // revoke
		if fs.NArg() != 1 {
			return fmt.Errorf("token revoke: give exactly one token id (see keygate token list)")
		}
		if err := record(fs.Arg(0), audit.OutcomeAttempt); err != nil {
			return fmt.Errorf("token revoke: refused, the audit journal cannot be written: %w", err)
		}
		plan, err := svc.PlanRevoke(ctx, credentials.OperatorCaller, ring, fs.Arg(0))
		if err != nil {
			return fmt.Errorf("token revoke: %w", err)
		}
		res, err := svc.Revoke(ctx, plan)
		if err != nil {
			return fmt.Errorf("token revoke: %w", err)
		}
		k := res.Key
		if err := record(k.ID, audit.OutcomeOK); err != nil {
			fmt.Fprintf(stderr, "warning: token %s was revoked but the audit journal could not record it: %v\n", k.ID, err)
		}
		switch {
		case res.Already && len(res.AlsoRevoked) == 0:
			fmt.Fprintf(stdout, "token %s was already revoked\n", k.ID)
		case res.Already:
			fmt.Fprintf(stdout, "token %s was already revoked; revoked its lineage: %s\n", k.ID, strings.Join(res.AlsoRevoked, ", "))
		case len(res.AlsoRevoked) > 0:
			fmt.Fprintf(stdout, "revoked token %s (%s) and its lineage: %s\n", k.ID, k.Name, strings.Join(res.AlsoRevoked, ", "))
		default:
			fmt.Fprintf(stdout, "revoked token %s (%s)\n", k.ID, k.Name)
		}
		return nil
	}
}

func dateOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.DateOnly)
}
