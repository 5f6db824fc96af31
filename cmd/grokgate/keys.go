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
	"github.com/grokgate/grokgate/keys"
	"github.com/grokgate/grokgate/sqlite"
)

const keysUsage = `Usage:
  grokgate keys create --name NAME [--role user|admin] [--db FILE]
  grokgate keys list [--json] [--db FILE]
  grokgate keys revoke ID_OR_PREFIX [--db FILE]
`

// keysCmd manages keys directly in the database; a running server sees the
// change within two seconds.
func keysCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	s := newSettings("keys "+sub, getenv, stderr)
	var db, name, role string
	var asJSON bool
	s.String(&db, "db", "GROKGATE_DB", "grokgate.db", "SQLite database file")
	switch sub {
	case "create":
		s.fs.StringVar(&name, "name", "", "a label for the key (required)")
		s.fs.StringVar(&role, "role", string(grokgate.RoleUser), "user or admin")
	case "list":
		s.fs.BoolVar(&asJSON, "json", false, "print JSON for scripts")
	case "revoke":
	default:
		fmt.Fprintf(stderr, "unknown keys command %q\n\n%s", sub, keysUsage)
		return errUsage
	}
	// Go's flag package stops at the first non-flag; let the revoke target
	// come before or after the flags.
	var target string
	if sub == "revoke" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		target, args = args[0], args[1:]
	}
	if err := s.fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return errUsage
	}
	if sub == "revoke" && target == "" && s.fs.NArg() > 0 {
		target = s.fs.Arg(0)
	} else if s.fs.NArg() > 0 {
		s.errs = append(s.errs, fmt.Errorf("unexpected argument %q", s.fs.Arg(0)))
	}
	switch sub {
	case "create":
		s.check(strings.TrimSpace(name) != "", "--name is required: a label that tells you what the key is for")
		s.check(grokgate.Role(role).Valid(), "--role must be user or admin, got %q", role)
	case "revoke":
		s.check(target != "", "say which key to revoke: its id (key_...) or its prefix (gg-...)")
	}
	if err := s.err(); err != nil {
		return err
	}
	store, err := sqlite.Open(ctx, db)
	if err != nil {
		return err
	}
	defer store.Close()
	switch sub {
	case "create":
		k, secret, err := keys.Mint(keys.Random(), strings.TrimSpace(name), grokgate.Role(role), time.Now())
		if err != nil {
			return err
		}
		if err := store.CreateKey(ctx, k); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Created key %s (name %q, role %s, prefix %s).\nThe key is shown only this once; store it now:\n%s\n", k.ID, k.Name, k.Role, k.Prefix, secret)
		return nil
	case "list":
		list, err := store.ListKeys(ctx)
		if err != nil {
			return err
		}
		return printKeys(stdout, list, asJSON)
	default:
		list, err := store.ListKeys(ctx)
		if err != nil {
			return err
		}
		k, err := findKey(list, target)
		if err != nil {
			return err
		}
		if err := store.RevokeKey(ctx, k.ID, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Revoked key %s (%s, %q). Running servers refuse it within 2 seconds.\n", k.ID, k.Prefix, k.Name)
		return nil
	}
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

// keyView is what listings show: never the secret or its hash.
type keyView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Role      string     `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

func printKeys(w io.Writer, list []grokgate.Key, asJSON bool) error {
	views := make([]keyView, 0, len(list))
	for _, k := range list {
		v := keyView{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Role: string(k.Role), CreatedAt: k.CreatedAt}
		if !k.RevokedAt.IsZero() {
			t := k.RevokedAt
			v.RevokedAt = &t
		}
		views = append(views, v)
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(views)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tROLE\tCREATED\tSTATUS")
	for _, v := range views {
		status := "active"
		if v.RevokedAt != nil {
			status = "revoked " + v.RevokedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Name, v.Prefix, v.Role, v.CreatedAt.Format(time.RFC3339), status)
	}
	return tw.Flush()
}
