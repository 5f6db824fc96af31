package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/admin"
	"github.com/grokgate/grokgate/keys"
)

const keysUsage = `Usage:
  grokgate keys create --name NAME [--role user|admin|metrics] [--models M1,M2] [--tools T1,T2] [--expires TIME] [LIMITS] [--db DB]
  grokgate keys list [--json] [--db DB]
  grokgate keys update ID_OR_PREFIX [--name NAME] [--models M1,M2] [--tools T1,T2] [--expires TIME|never] [LIMITS] [--db DB]
  grokgate keys revoke ID_OR_PREFIX [--db DB]

--models limits the key to those models (an empty list allows every model);
--tools to those server-side tools xAI runs, such as web_search and
x_search (an empty list allows every tool);
--expires takes an RFC 3339 time (2027-01-31T00:00:00Z) or a UTC date.
LIMITS: --rpm N --tpm N --max-streams N --budget-ticks-per-day N
--budget-ticks-per-month N; 0 is the server default, -1 no limit.
`

// keysCmd manages keys directly in the database; a running server sees the
// change within two seconds.
func keysCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	serverTools := strings.Join(grokgate.ServerTools(), ", ")
	s := newSettings("keys "+sub, getenv, stderr)
	var db, name, role, models, tools, expires string
	var asJSON bool
	s.String(&db, "db", "GROKGATE_DB", "grokgate.db", dbHelp)
	switch sub {
	case "create":
		s.fs.StringVar(&name, "name", "", "a label for the key (required)")
		s.fs.StringVar(&role, "role", string(grokgate.RoleUser), "user, admin or metrics (may scrape /metrics and nothing else)")
		s.fs.StringVar(&models, "models", "", "comma-separated models the key may use (default: every model)")
		s.fs.StringVar(&tools, "tools", "", "comma-separated server-side tools the key may use: "+serverTools+" (default: every tool)")
		s.fs.StringVar(&expires, "expires", "", "when the key stops working: RFC 3339 time or UTC date (default: never)")
	case "update":
		s.fs.StringVar(&name, "name", "", "a new label")
		s.fs.StringVar(&models, "models", "", `comma-separated models the key may use ("" allows every model)`)
		s.fs.StringVar(&tools, "tools", "", `comma-separated server-side tools the key may use ("" allows every tool)`)
		s.fs.StringVar(&expires, "expires", "", `RFC 3339 time or UTC date, or "never"`)
	case "list":
		s.fs.BoolVar(&asJSON, "json", false, "print JSON for scripts")
	}
	var lim grokgate.Limits
	if sub == "create" || sub == "update" {
		for _, f := range lim.Fields() {
			s.fs.Int64Var(f.V, strings.ReplaceAll(f.Name, "_", "-"), 0, f.Name+" for this key; 0: the server default, -1: none")
		}
	}
	switch sub {
	case "create", "update", "list":
	case "revoke":
	default:
		fmt.Fprintf(stderr, "unknown keys command %q\n\n%s", sub, keysUsage)
		return errUsage
	}
	// Go's flag package stops at the first non-flag; let the target key
	// stand anywhere among the flags.
	var target string
	needsTarget := sub == "revoke" || sub == "update"
	for {
		if err := s.fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil
		} else if err != nil {
			return errUsage
		}
		if s.fs.NArg() == 0 {
			break
		}
		if !needsTarget || target != "" {
			s.errs = append(s.errs, fmt.Errorf("unexpected argument %q", s.fs.Arg(0)))
			break
		}
		target, args = s.fs.Arg(0), s.fs.Args()[1:]
	}
	set := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	now := time.Now()
	var upd grokgate.KeyUpdate
	if set["name"] {
		n := strings.TrimSpace(name)
		s.check(n != "", "--name must not be empty: a label that tells you what the key is for")
		s.check(n == "" || grokgate.ValidKeyName(n), "--name must be printable text of at most 200 characters, without control characters such as newlines or tabs")
		upd.Name = &n
	}
	if set["models"] {
		list := splitModels(models)
		upd.AllowedModels = &list
	}
	if set["tools"] {
		list := splitModels(tools)
		for _, t := range list {
			s.check(grokgate.KnownServerTool(t), "--tools names %q, which is not a server-side tool; the known ones are %s", t, serverTools)
		}
		upd.AllowedTools = &list
	}
	ptrs := []**int64{&upd.Limits.RPM, &upd.Limits.TPM, &upd.Limits.MaxStreams, &upd.Limits.BudgetTicksPerDay, &upd.Limits.BudgetTicksPerMonth}
	for i, f := range lim.Fields() {
		if flagName := strings.ReplaceAll(f.Name, "_", "-"); set[flagName] {
			s.check(*f.V >= grokgate.NoLimit, "--%s must be the limit, 0 for the server default or -1 for none, got %d", flagName, *f.V)
			*ptrs[i] = f.V
		}
	}
	if set["expires"] {
		t, err := parseExpiry(expires, sub == "update", now)
		if err != nil {
			s.errs = append(s.errs, err)
		}
		upd.ExpiresAt = &t
	}
	switch sub {
	case "create":
		s.check(set["name"], "--name is required: a label that tells you what the key is for")
		s.check(grokgate.Role(role).Valid(), "--role must be user, admin or metrics, got %q", role)
	case "update":
		s.check(target != "", "say which key to update: its id (key_...) or its prefix (gg-...)")
		s.check(len(set) > 0 && !(len(set) == 1 && set["db"]), "say what to change: --name, --models, --tools, --expires or a limit (--rpm, --tpm, --max-streams, --budget-ticks-per-day, --budget-ticks-per-month)")
	case "revoke":
		s.check(target != "", "say which key to revoke: its id (key_...) or its prefix (gg-...)")
	}
	if err := s.err(); err != nil {
		return err
	}
	st, err := openStore(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "create":
		k, secret, err := keys.Mint(keys.Random(), *upd.Name, grokgate.Role(role), now)
		if err != nil {
			return err
		}
		if upd.AllowedModels != nil {
			k.AllowedModels = *upd.AllowedModels
		}
		if upd.AllowedTools != nil && len(*upd.AllowedTools) > 0 {
			k.AllowedTools = *upd.AllowedTools
		}
		if upd.ExpiresAt != nil {
			k.ExpiresAt = *upd.ExpiresAt
		}
		k.Limits = upd.Limits.Apply(k.Limits)
		if err := st.CreateKey(ctx, k); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Created key %s (name %q, role %s, prefix %s%s).\nThe key is shown only this once; store it now:\n%s\n",
			k.ID, k.Name, k.Role, k.Prefix, describeLimits(k), secret)
		return nil
	case "list":
		list, err := st.ListKeys(ctx)
		if err != nil {
			return err
		}
		return printKeys(stdout, list, asJSON, now)
	}
	list, err := st.ListKeys(ctx)
	if err != nil {
		return err
	}
	k, err := findKey(list, target)
	if err != nil {
		return err
	}
	if sub == "update" {
		k, err = st.UpdateKey(ctx, k.ID, upd)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Updated key %s (name %q%s). Running servers apply it within 2 seconds.\n", k.ID, k.Name, describeLimits(k))
		return nil
	}
	if err := st.RevokeKey(ctx, k.ID, now); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Revoked key %s (%s, %q). Running servers refuse it within 2 seconds.\n", k.ID, k.Prefix, k.Name)
	return nil
}

// splitModels reads a comma-separated list (--models, --tools), dropping
// blanks and repeats.
func splitModels(s string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, m := range strings.Split(s, ",") {
		if m = strings.TrimSpace(m); m != "" && !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}

// parseExpiry reads --expires; "never" (update only) removes the expiry.
func parseExpiry(v string, allowNever bool, now time.Time) (time.Time, error) {
	if allowNever && v == "never" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		var derr error
		if t, derr = time.Parse(time.DateOnly, v); derr != nil {
			return t, fmt.Errorf("--expires %q is neither an RFC 3339 time (2027-01-31T00:00:00Z) nor a date (2027-01-31)", v)
		}
	}
	if !t.After(now) {
		return t, fmt.Errorf("--expires %q is not in the future; to stop a key now, revoke it", v)
	}
	return t.UTC(), nil
}

func describeLimits(k grokgate.Key) string {
	var b strings.Builder
	if len(k.AllowedModels) > 0 {
		b.WriteString(", models " + strings.Join(k.AllowedModels, ","))
	}
	if len(k.AllowedTools) > 0 {
		b.WriteString(", tools " + strings.Join(k.AllowedTools, ","))
	}
	if !k.ExpiresAt.IsZero() {
		b.WriteString(", expires " + k.ExpiresAt.Format(time.RFC3339))
	}
	b.WriteString(describeKeyLimits(k.Limits))
	return b.String()
}

// findKey resolves an id or a unique display prefix.
func findKey(list []grokgate.Key, target string) (grokgate.Key, error) {
	var found []grokgate.Key
	for _, k := range list {
		if k.ID == target || (strings.HasPrefix(target, keys.SecretPrefix) && strings.HasPrefix(k.Prefix, target)) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return grokgate.Key{}, fmt.Errorf("no key has id or prefix %q; see grokgate keys list", target)
	default:
		return grokgate.Key{}, fmt.Errorf("%d keys match %q; give the key id instead", len(found), target)
	}
}

// printKeys lists keys as the admin API shows them: never the secret or
// its hash.
func printKeys(w io.Writer, list []grokgate.Key, asJSON bool, now time.Time) error {
	views := make([]admin.KeyView, 0, len(list))
	for _, k := range list {
		views = append(views, admin.ViewKey(k, now))
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(views)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tROLE\tCREATED\tMODELS\tTOOLS\tEXPIRES\tSTATUS")
	for _, v := range views {
		status := v.Status
		if v.RevokedAt != nil {
			status += " " + v.RevokedAt.Format(time.RFC3339)
		}
		models, tools, expires := "all", "all", "never"
		if len(v.AllowedModels) > 0 {
			models = strings.Join(v.AllowedModels, ",")
		}
		if len(v.AllowedTools) > 0 {
			tools = strings.Join(v.AllowedTools, ",")
		}
		if v.ExpiresAt != nil {
			expires = v.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Name, v.Prefix, v.Role, v.CreatedAt.Format(time.RFC3339), models, tools, expires, status)
	}
	return tw.Flush()
}
