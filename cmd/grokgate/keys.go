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
	run, ok := map[string]func(*keysCommand, context.Context, []string, io.Writer) error{
		"create": (*keysCommand).create, "list": (*keysCommand).list,
		"update": (*keysCommand).update, "revoke": (*keysCommand).revoke,
	}[sub]
	if !ok {
		fmt.Fprintf(stderr, "unknown keys command %q\n\n%s", sub, keysUsage)
		return errUsage
	}
	c := &keysCommand{s: newSettings("keys "+sub, getenv, stderr)}
	c.s.String(&c.db, "db", "GROKGATE_DB", "grokgate.db", dbHelp)
	err := run(c, ctx, args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// keysCommand is what every keys subcommand shares: its flags and the
// database they name.
type keysCommand struct {
	s  *settings
	db string
}

func (c *keysCommand) create(ctx context.Context, args []string, stdout io.Writer) error {
	var role string
	c.s.fs.StringVar(&role, "role", string(grokgate.RoleUser), "user, admin or metrics (may scrape /metrics and nothing else)")
	f := bindKeyFlags(c.s, true)
	if _, err := c.parse(args, false); err != nil {
		return err
	}
	now := time.Now()
	spec := f.update(c.s).Spec(grokgate.Role(role))
	spec.Tidy()
	c.s.checkKey(spec.Validate(now))
	st, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	k, secret, err := keys.MintSpec(keys.Random(), spec, now)
	if err != nil {
		return err
	}
	if err := st.CreateKey(ctx, k); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Created key %s (name %q, role %s, prefix %s%s).\nThe key is shown only this once; store it now:\n%s\n",
		k.ID, k.Name, k.Role, k.Prefix, describeLimits(k), secret)
	return nil
}

func (c *keysCommand) list(ctx context.Context, args []string, stdout io.Writer) error {
	var asJSON bool
	c.s.fs.BoolVar(&asJSON, "json", false, "print JSON for scripts")
	if _, err := c.parse(args, false); err != nil {
		return err
	}
	st, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListKeys(ctx)
	if err != nil {
		return err
	}
	return printKeys(stdout, list, asJSON, time.Now())
}

func (c *keysCommand) update(ctx context.Context, args []string, stdout io.Writer) error {
	f := bindKeyFlags(c.s, false)
	target, err := c.parse(args, true)
	if err != nil {
		return err
	}
	now := time.Now()
	upd := f.update(c.s)
	upd.Tidy()
	c.s.checkKey(upd.Validate(now))
	c.s.check(target != "", "say which key to update: its id (key_...) or its prefix (gg-...)")
	changes := 0
	c.s.fs.Visit(func(fl *flag.Flag) {
		if fl.Name != "db" {
			changes++
		}
	})
	c.s.check(changes > 0, "say what to change: --name, --models, --tools, --expires or a limit (--rpm, --tpm, --max-streams, --budget-ticks-per-day, --budget-ticks-per-month)")
	st, k, err := c.target(ctx, target)
	if err != nil {
		return err
	}
	defer st.Close()
	if k, err = st.UpdateKey(ctx, k.ID, upd); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Updated key %s (name %q%s). Running servers apply it within 2 seconds.\n", k.ID, k.Name, describeLimits(k))
	return nil
}

func (c *keysCommand) revoke(ctx context.Context, args []string, stdout io.Writer) error {
	target, err := c.parse(args, true)
	if err != nil {
		return err
	}
	c.s.check(target != "", "say which key to revoke: its id (key_...) or its prefix (gg-...)")
	st, k, err := c.target(ctx, target)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RevokeKey(ctx, k.ID, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Revoked key %s (%s, %q). Running servers refuse it within 2 seconds.\n", k.ID, k.Prefix, k.Name)
	return nil
}

// parse parses args, letting the target key (update, revoke) stand anywhere
// among the flags: Go's flag package stops at the first non-flag.
func (c *keysCommand) parse(args []string, needsTarget bool) (target string, err error) {
	s := c.s
	for {
		if err := s.fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return "", err
		} else if err != nil {
			return "", errUsage
		}
		if s.fs.NArg() == 0 {
			return target, nil
		}
		if !needsTarget || target != "" {
			s.errs = append(s.errs, fmt.Errorf("unexpected argument %q", s.fs.Arg(0)))
			return target, nil
		}
		target, args = s.fs.Arg(0), s.fs.Args()[1:]
	}
}

// open reports the problems collected so far, if any, else opens the store.
func (c *keysCommand) open(ctx context.Context) (store, error) {
	if err := c.s.err(); err != nil {
		return nil, err
	}
	return openStore(ctx, c.db)
}

// target opens the store (open) and finds the key named by target. The
// caller closes the store.
func (c *keysCommand) target(ctx context.Context, target string) (store, grokgate.Key, error) {
	st, err := c.open(ctx)
	if err != nil {
		return nil, grokgate.Key{}, err
	}
	list, err := st.ListKeys(ctx)
	var k grokgate.Key
	if err == nil {
		k, err = findKey(list, target)
	}
	if err != nil {
		st.Close()
		return nil, k, err
	}
	return st, k, nil
}

// keyFlags are the flags that set a key's fields, on create and update.
type keyFlags struct {
	name, models, tools, expires string
	limits                       grokgate.Limits
	create                       bool // no --expires never: there is no expiry to remove
}

func bindKeyFlags(s *settings, create bool) *keyFlags {
	f := &keyFlags{create: create}
	serverTools := strings.Join(grokgate.ServerTools(), ", ")
	if create {
		s.fs.StringVar(&f.name, "name", "", "a label for the key (required)")
		s.fs.StringVar(&f.models, "models", "", "comma-separated models the key may use (default: every model)")
		s.fs.StringVar(&f.tools, "tools", "", "comma-separated server-side tools the key may use: "+serverTools+" (default: every tool)")
		s.fs.StringVar(&f.expires, "expires", "", "when the key stops working: RFC 3339 time or UTC date (default: never)")
	} else {
		s.fs.StringVar(&f.name, "name", "", "a new label")
		s.fs.StringVar(&f.models, "models", "", `comma-separated models the key may use ("" allows every model)`)
		s.fs.StringVar(&f.tools, "tools", "", `comma-separated server-side tools the key may use ("" allows every tool)`)
		s.fs.StringVar(&f.expires, "expires", "", `RFC 3339 time or UTC date, or "never"`)
	}
	for _, l := range f.limits.Fields() {
		s.fs.Int64Var(l.V, flagForField(l.Name), 0, l.Name+" for this key; 0: the server default, -1: none")
	}
	return f
}

// update is the change the flags given ask for, not yet checked against
// the key rules; an --expires that cannot be read is noted in s.
func (f *keyFlags) update(s *settings) grokgate.KeyUpdate {
	set := map[string]bool{}
	s.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	var upd grokgate.KeyUpdate
	if set["name"] {
		upd.Name = &f.name
	}
	for _, l := range []struct {
		flag string
		from *string
		to   **[]string
	}{{"models", &f.models, &upd.AllowedModels}, {"tools", &f.tools, &upd.AllowedTools}} {
		if set[l.flag] {
			list := splitList(*l.from)
			*l.to = &list
		}
	}
	for _, l := range f.limits.Fields() {
		if set[flagForField(l.Name)] {
			upd.Limits.Set(l.Name, *l.V)
		}
	}
	if set["expires"] {
		t, err := parseExpiry(f.expires, !f.create)
		if err != nil {
			s.errs = append(s.errs, err)
		}
		upd.ExpiresAt = &t
	}
	return upd
}

// flagForField is the CLI's flag for a key setting the rules name
// (grokgate.FieldError).
func flagForField(field string) string {
	switch field {
	case "allowed_models":
		return "models"
	case "allowed_tools":
		return "tools"
	case "expires_at":
		return "expires"
	}
	return strings.ReplaceAll(field, "_", "-")
}

// checkKey notes a key setting the rules refuse, by its flag.
func (s *settings) checkKey(err error) {
	var fe *grokgate.FieldError
	switch {
	case errors.As(err, &fe):
		s.errs = append(s.errs, fmt.Errorf("--%s %s", flagForField(fe.Field), fe.Problem))
	case err != nil:
		s.errs = append(s.errs, err)
	}
}

// splitList reads a comma-separated list (--models, --tools); "" is the
// empty list, which allows everything.
func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

// parseExpiry reads --expires; "never" (update only) removes the expiry.
func parseExpiry(v string, allowNever bool) (time.Time, error) {
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
