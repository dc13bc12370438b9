package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/textsafe"
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
	// the tools, and refused when the journal cannot be written. The
	// redactor masks anything shaped like a credential that an argument
	// might carry.
	var journal *audit.Log
	if sub != "list" {
		if journal, err = audit.Open(cfg.AuditFile, auth.NewRedactor().Redact); err != nil {
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
		fmt.Fprintf(stderr, "created token %s \"%s\" [%s], expires %s. It is shown once:\n", issued.Key.ID, textsafe.Escape(name),
			textsafe.Escape(strings.Join(issued.Key.Scopes, ", ")), issued.Key.ExpiresAt.Format(time.DateOnly))
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
			// Names come from whoever could create a key (an agent, through
			// credentials_create): their controls are spelled out.
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", textsafe.Escape(k.ID), textsafe.Escape(k.Name),
				textsafe.Escape(k.Masked), textsafe.Escape(strings.Join(k.Scopes, ",")),
				k.CreatedAt.Format(time.DateOnly), k.ExpiresAt.Format(time.DateOnly), dateOrDash(k.LastUsedAt), state)
		}
		return tw.Flush()
	default: // revoke
		if fs.NArg() != 1 {
			return fmt.Errorf("token revoke: give exactly one token id (see keygate token list)")
		}
		id, err := revokeTarget(fs.Arg(0), stderr)
		if err != nil {
			return err
		}
		if err := record(id, audit.OutcomeAttempt); err != nil {
			return fmt.Errorf("token revoke: refused, the audit journal cannot be written: %w", err)
		}
		plan, err := svc.PlanRevoke(ctx, credentials.OperatorCaller, ring, id)
		if err != nil {
			_ = record(id, audit.OutcomeRefused)
			if errors.Is(err, provider.ErrNotFound) {
				return fmt.Errorf("token revoke: no token has id %s; see keygate token list", id)
			}
			return fmt.Errorf("token revoke: %w", err)
		}
		res, err := svc.Revoke(ctx, plan)
		if err != nil {
			_ = record(id, audit.OutcomeRefused)
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
			fmt.Fprintf(stdout, "revoked token %s (%s) and its lineage: %s\n", k.ID, textsafe.Escape(k.Name), strings.Join(res.AlsoRevoked, ", "))
		default:
			fmt.Fprintf(stdout, "revoked token %s (%s)\n", k.ID, textsafe.Escape(k.Name))
		}
		return nil
	}
}

// tokenID is the shape of a key's public id (auth.TokenPattern).
var tokenID = regexp.MustCompile(`^[0-9A-Za-z]{12}$`)

// revokeTarget turns the argument of token revoke into a key id. A whole
// token, pasted by mistake, is acted on by its public id and never
// repeated: not on the terminal, not in the journal. Anything else must be
// an id; what is not is refused without being repeated, since it may be a
// secret too.
func revokeTarget(arg string, stderr io.Writer) (string, error) {
	if strings.HasPrefix(arg, auth.TokenPrefix) {
		parsed, reason, err := auth.ParseToken(arg)
		if err != nil {
			what := "it does not have a token's shape"
			if reason == "bad_checksum" {
				what = "its checksum does not match (mistyped or cut short)"
			}
			return "", fmt.Errorf("token revoke: the argument looks like a token (%s) but %s; give the token id from keygate token list", auth.Mask(arg), what)
		}
		fmt.Fprintf(stderr, "treating the argument as token %s, id %s\n", auth.Mask(arg), parsed.PublicID)
		return parsed.PublicID, nil
	}
	if !tokenID.MatchString(arg) {
		return "", fmt.Errorf("token revoke: the argument is not a token id (12 letters and digits, the ID column of keygate token list)")
	}
	return arg, nil
}

func dateOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.DateOnly)
}
