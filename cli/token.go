package cli

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/textsafe"
)

// TokenCmd is the admin CLI for the local store. It acts with the
// authority of whoever can open the store file, so it needs no token.
type TokenCmd struct {
	Create TokenCreateCmd `cmd:"" help:"Mint a token in the local store; it is printed once (or written to the env file)."`
	List   TokenListCmd   `cmd:"" help:"List tokens, never their secrets."`
	Revoke TokenRevokeCmd `cmd:"" help:"Revoke a token and its lineage, by id (a whole token is acted on by its id and never repeated)."`
}

// TokenCreateCmd mints a token.
type TokenCreateCmd struct {
	config.Common
	Name          string `required:"" placeholder:"NAME" help:"What the token is for."`
	Scopes        string `required:"" placeholder:"LIST" help:"Comma-separated scopes, e.g. content:read,content:write:posts."`
	ExpiresInDays int    `default:"90" placeholder:"DAYS" help:"Lifetime in days, 1 to 365."`
	EnvVar        string `placeholder:"VAR" help:"Write the token into the env file under this variable instead of printing it."`
}

// TokenListCmd lists tokens.
type TokenListCmd struct {
	config.Common
}

// TokenRevokeCmd revokes a token.
type TokenRevokeCmd struct {
	config.Common
	// Taken as a list so that a stray second argument, which may be a
	// secret, is refused by keygate without being repeated.
	ID []string `arg:"" optional:"" name:"id" help:"The token's id (the ID column of keygate token list)."`
}

// operator is the store opened for the token CLI. The policy lets the
// operator do anything, and every operation goes through the same service,
// delivery rules and lineage as the tools.
type operator struct {
	cfg     config.Config
	store   *local.Store
	svc     *credentials.Service
	ring    credentials.Ring
	journal app.Journal
	tool    string
}

// openOperator opens the store (and, for changes, the audit journal) for
// token SUB. Credential changes made here are journaled like those made
// through the tools, and refused when the journal cannot be written.
func openOperator(rt *invocation, common config.Common, sub string, journaled bool) (*operator, error) {
	env, err := rt.env(common.EnvFile)
	if err != nil {
		return nil, err
	}
	cfg, err := common.Config(env)
	if err != nil {
		return nil, err
	}
	store, err := local.Open(rt.ctx, cfg.Store, local.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.StoreName(), err)
	}
	o := &operator{cfg: cfg, store: store, tool: "token " + sub, ring: credentials.Ring{Provider: "local", Local: true},
		svc: &credentials.Service{Store: store, Places: delivery.Places{EnvFile: cfg.EnvFile, KeysDir: cfg.KeysDir()}}}
	if journaled {
		// The redactor masks anything shaped like a credential that an
		// argument might carry.
		if o.journal, err = app.OpenJournal(rt.ctx, cfg, auth.NewRedactor().Redact); err != nil {
			_ = store.Close()
			return nil, fmt.Errorf("%s: %w", o.tool, err)
		}
	}
	return o, nil
}

// close closes the audit journal and the store. What the command did is
// done by then, so a failure is a warning on w: the journal's last records
// or the store's last write may not have reached the disk.
func (o *operator) close(w io.Writer) {
	var errs []error
	if o.journal != nil {
		errs = append(errs, o.journal.Close())
	}
	errs = append(errs, o.store.Close())
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(w, "warning: %s: %v\n", o.tool, err)
	}
}

func (o *operator) record(target, outcome string) error {
	return o.journal.Write(audit.Record{Principal: "cli", Provider: "local", Tool: o.tool, Target: target, Outcome: outcome})
}

func (c *TokenCreateCmd) Run(rt *invocation) error {
	if strings.TrimSpace(c.Name) == "" {
		return errors.New("token create: --name must not be empty")
	}
	scopes, err := auth.ParseScopes(strings.Split(c.Scopes, ","))
	if err != nil {
		return fmt.Errorf("token create: --scopes: %w", err)
	}
	if c.ExpiresInDays < 1 || c.ExpiresInDays > 365 {
		return errors.New("token create: --expires-in-days must be 1 to 365")
	}
	o, err := openOperator(rt, c.Common, "create", true)
	if err != nil {
		return err
	}
	defer o.close(rt.Err)
	deliver := "reveal"
	if c.EnvVar != "" {
		deliver = "env:" + c.EnvVar
	}
	// Refuse a bad or taken variable before anything is made.
	dest, err := o.svc.Places.Parse(deliver)
	if err == nil {
		err = o.svc.Places.Preflight(dest)
	}
	if err != nil {
		return fmt.Errorf("token create: --env-var: %w", err)
	}
	if err := o.record(c.Name, audit.OutcomeAttempt); err != nil {
		return fmt.Errorf("token create: refused, the audit journal cannot be written: %w", err)
	}
	issued, err := o.svc.Create(rt.ctx, credentials.OperatorCaller, o.ring, credentials.CreateRequest{Name: c.Name, Scopes: scopes,
		ExpiresAt: time.Now().Add(time.Duration(c.ExpiresInDays) * 24 * time.Hour), Deliver: deliver})
	if err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	if err := o.record(issued.Key.ID, audit.OutcomeOK); err != nil {
		fmt.Fprintf(rt.Err, "warning: token %s was created but the audit journal could not record it: %v\n", issued.Key.ID, err)
	}
	if c.EnvVar != "" {
		fmt.Fprintf(rt.Err, "created token %s (%s) and wrote it to %s as %s\n", issued.Key.ID, issued.Key.Masked, o.cfg.EnvFile, c.EnvVar)
		return nil
	}
	fmt.Fprintf(rt.Err, "created token %s \"%s\" [%s], expires %s. It is shown once:\n", issued.Key.ID, textsafe.Escape(c.Name),
		textsafe.Escape(strings.Join(issued.Key.Scopes, ", ")), issued.Key.ExpiresAt.Format(time.DateOnly))
	_, err = fmt.Fprintln(rt.Out, issued.Secret.Reveal())
	return err
}

func (c *TokenListCmd) Run(rt *invocation) error {
	o, err := openOperator(rt, c.Common, "list", false)
	if err != nil {
		return err
	}
	defer o.close(rt.Err)
	keys, err := o.svc.List(rt.ctx, credentials.OperatorCaller, o.ring)
	if err != nil {
		return err
	}
	return printKeys(rt.Out, keys, time.Now())
}

// printKeys prints keys as a table. Names come from whoever could create a
// key (an agent, through credentials_create): their controls are spelled
// out.
func printKeys(w io.Writer, keys []provider.Key, now time.Time) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTOKEN\tSCOPES\tCREATED\tEXPIRES\tLAST USED\tSTATE")
	for _, k := range keys {
		state := "active"
		switch {
		case !k.RevokedAt.IsZero():
			state = "revoked"
		case now.After(k.ExpiresAt):
			state = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", textsafe.Escape(k.ID), textsafe.Escape(k.Name),
			textsafe.Escape(k.Masked), textsafe.Escape(strings.Join(k.Scopes, ",")),
			k.CreatedAt.Format(time.DateOnly), k.ExpiresAt.Format(time.DateOnly), dateOrDash(k.LastUsedAt), state)
	}
	return tw.Flush()
}

func (c *TokenRevokeCmd) Run(rt *invocation) error {
	if len(c.ID) != 1 {
		return errors.New("token revoke: give exactly one token id (see keygate token list)")
	}
	id, err := revokeTarget(c.ID[0], rt.Err)
	if err != nil {
		return err
	}
	o, err := openOperator(rt, c.Common, "revoke", true)
	if err != nil {
		return err
	}
	defer o.close(rt.Err)
	if err := o.record(id, audit.OutcomeAttempt); err != nil {
		return fmt.Errorf("token revoke: refused, the audit journal cannot be written: %w", err)
	}
	plan, err := o.svc.PlanRevoke(rt.ctx, credentials.OperatorCaller, o.ring, id)
	if err != nil {
		_ = o.record(id, audit.OutcomeRefused)
		if errors.Is(err, provider.ErrNotFound) {
			return fmt.Errorf("token revoke: no token has id %s; see keygate token list", id)
		}
		return fmt.Errorf("token revoke: %w", err)
	}
	res, err := o.svc.Revoke(rt.ctx, plan)
	if err != nil {
		_ = o.record(id, audit.OutcomeRefused)
		return fmt.Errorf("token revoke: %w", err)
	}
	if err := o.record(res.Key.ID, audit.OutcomeOK); err != nil {
		fmt.Fprintf(rt.Err, "warning: token %s was revoked but the audit journal could not record it: %v\n", res.Key.ID, err)
	}
	if _, err := fmt.Fprintln(rt.Out, revokedMessage(res)); err != nil {
		return err
	}
	for _, place := range res.Removed {
		fmt.Fprintf(rt.Out, "removed the revoked secret from %s\n", textsafe.Escape(place))
	}
	if res.RemoveErr != nil {
		fmt.Fprintf(rt.Err, "warning: could not remove every delivered copy of a revoked key (%v): delete it by hand, it no longer works\n", res.RemoveErr)
	}
	return nil
}

// revokedMessage says what a revocation did.
func revokedMessage(res credentials.Revoked) string {
	k := res.Key
	switch {
	case res.Already && len(res.AlsoRevoked) == 0:
		return fmt.Sprintf("token %s was already revoked", k.ID)
	case res.Already:
		return fmt.Sprintf("token %s was already revoked; revoked its lineage: %s", k.ID, strings.Join(res.AlsoRevoked, ", "))
	case len(res.AlsoRevoked) > 0:
		return fmt.Sprintf("revoked token %s (%s) and its lineage: %s", k.ID, textsafe.Escape(k.Name), strings.Join(res.AlsoRevoked, ", "))
	}
	return fmt.Sprintf("revoked token %s (%s)", k.ID, textsafe.Escape(k.Name))
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
		return "", errors.New("token revoke: the argument is not a token id (12 letters and digits, the ID column of keygate token list)")
	}
	return arg, nil
}

func dateOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.DateOnly)
}
