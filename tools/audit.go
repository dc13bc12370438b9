package tools

import (
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
)

// auditOutcome classifies a finished call for the journal.
func auditOutcome(res *mcp.CallToolResult, err error) string {
	switch {
	case err != nil || res == nil:
		return audit.OutcomeError
	case res.IsError:
		return audit.OutcomeRefused
	}
	return audit.OutcomeOK
}

// auditRecord describes a call without its secrets: the target is named by
// type and id, key id or key name, never by a token. It reads the raw
// arguments, so that a call refused before they were decoded is named too.
func (m *middleware) auditRecord(t ServerTool, call *Call, outcome string) audit.Record {
	args := call.Req.GetArguments()
	str := func(k string) string { s, _ := args[k].(string); return s }
	target := str("credential")
	if typ := str("type"); typ != "" {
		target = typ + "/" + firstNonEmpty(str("id"), str("slug"), str("title"))
	} else if target == "" {
		target = str("name")
	}
	if dry, _ := args["dry_run"].(bool); dry {
		outcome += " (dry run)"
	}
	pr := str("provider")
	if pr == "" && m.d.Providers != nil {
		pr = m.d.Providers.Names()[0]
	}
	keyID, detail := "", ""
	if p := call.Caller; p != nil {
		keyID = p.KeyID
		switch {
		case p.IsGrant():
			// The grant acts with its approving key's authority
			// (credentials.Service.Actor): the record names both.
			detail = fmt.Sprintf("through OAuth grant %s approved by key %s", p.KeyID, p.CreatedBy)
		case p.IsExternal():
			detail = fmt.Sprintf("access token of the external issuer %s, subject %s", p.CreatedBy, strings.TrimPrefix(p.KeyID, auth.ExternalPrefix))
		}
	}
	return audit.Record{Time: m.d.now().UTC(), Principal: keyID, Provider: pr, Tool: t.Tool.Name, Target: target, Outcome: outcome, Detail: detail}
}

// audit writes one record; a failure is logged, since the call it records
// has already happened (credential operations are refused up front instead).
func (m *middleware) audit(t ServerTool, call *Call, outcome string) {
	if m.d.Audit == nil {
		return
	}
	if err := m.d.Audit.Write(m.auditRecord(t, call, outcome)); err != nil {
		m.d.Logger.Error("cannot write the audit journal", "tool", t.Tool.Name, "err", err)
	}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
