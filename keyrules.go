package grokgate

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The rules for a key's settings live here, next to Key, so that every way
// of making or changing a key (the CLI, the admin API) accepts and refuses
// the same things.

const (
	// MaxKeyName bounds a key's name in bytes: it is a label, shown in
	// lists and logs.
	MaxKeyName = 200
	// MaxAllowList bounds a key's allowed models or tools: the lists are
	// searched on every request.
	MaxAllowList = 1000
)

// KeySpec is what a new key is made from.
type KeySpec struct {
	Name          string
	Role          Role
	AllowedModels []string  // empty: every model
	AllowedTools  []string  // empty: every server-side tool
	ExpiresAt     time.Time // zero: never
	Limits        Limits    // 0: the server default, NoLimit: none
}

// FieldError names the key setting that is wrong and says how to fix it.
// Field is the name the admin API gives the setting ("name", "role",
// "allowed_models", "allowed_tools", "expires_at" or a Limits.Fields name);
// each surface renders it in its own spelling (the CLI's flags).
type FieldError struct {
	Field   string
	Problem string // follows the field's name: "must not be empty"
	err     error
}

func (e *FieldError) Error() string { return e.Field + " " + e.Problem }

// Unwrap gives ErrBadLimit for a bad limit.
func (e *FieldError) Unwrap() error { return e.err }

// Tidy trims the name and the list entries and drops repeated entries, the
// forms every surface accepts; blank entries stay, for Validate to refuse.
func (s *KeySpec) Tidy() { s.update().Tidy() }

// Validate reports the first setting of s a new key may not have.
func (s KeySpec) Validate(now time.Time) error {
	if strings.TrimSpace(s.Name) == "" {
		return &FieldError{Field: "name", Problem: "is required: a label that says what the key is for"}
	}
	if !s.Role.Valid() {
		return &FieldError{Field: "role", Problem: fmt.Sprintf("must be user, admin or metrics (may scrape /metrics and nothing else), got %q", s.Role)}
	}
	if err := s.update().Validate(now); err != nil {
		return err
	}
	return s.Limits.Check()
}

// update is s as a change of every field it shares with KeyUpdate, pointing
// into s.
func (s *KeySpec) update() *KeyUpdate {
	u := &KeyUpdate{Name: &s.Name, AllowedModels: &s.AllowedModels, AllowedTools: &s.AllowedTools}
	if !s.ExpiresAt.IsZero() {
		u.ExpiresAt = &s.ExpiresAt
	}
	return u
}

// Spec is the new key with role that u's fields describe; fields u leaves
// out take their defaults.
func (u KeyUpdate) Spec(role Role) KeySpec {
	s := KeySpec{Role: role, Limits: u.Limits.Apply(Limits{})}
	if u.Name != nil {
		s.Name = *u.Name
	}
	if u.AllowedModels != nil {
		s.AllowedModels = *u.AllowedModels
	}
	if u.AllowedTools != nil {
		s.AllowedTools = *u.AllowedTools
	}
	if u.ExpiresAt != nil {
		s.ExpiresAt = *u.ExpiresAt
	}
	return s
}

// Tidy trims the name and the list entries and drops repeated entries;
// blank entries stay, for Validate to refuse.
func (u *KeyUpdate) Tidy() {
	if u.Name != nil {
		*u.Name = strings.TrimSpace(*u.Name)
	}
	for _, list := range []*[]string{u.AllowedModels, u.AllowedTools} {
		if list == nil {
			continue
		}
		seen := map[string]bool{}
		clean := []string{}
		for _, v := range *list {
			if v = strings.TrimSpace(v); !seen[v] {
				seen[v] = true
				clean = append(clean, v)
			}
		}
		*list = clean
	}
}

// Validate reports the first change u may not make; at time now an expiry
// must lie in the future (the zero time removes it).
func (u KeyUpdate) Validate(now time.Time) error {
	if u.Name != nil {
		if err := checkName(*u.Name); err != nil {
			return err
		}
	}
	if u.AllowedModels != nil {
		if err := checkAllowList("allowed_models", "model ids", *u.AllowedModels); err != nil {
			return err
		}
	}
	if u.AllowedTools != nil {
		if err := checkAllowList("allowed_tools", "server-side tool types", *u.AllowedTools); err != nil {
			return err
		}
		for _, t := range *u.AllowedTools {
			if !KnownServerTool(t) {
				return &FieldError{Field: "allowed_tools", Problem: fmt.Sprintf("names %q, which is not a server-side tool; the known ones are %s",
					t, strings.Join(ServerTools(), ", "))}
			}
		}
	}
	if u.ExpiresAt != nil && !u.ExpiresAt.IsZero() && !u.ExpiresAt.After(now) {
		return &FieldError{Field: "expires_at", Problem: "must be in the future; to stop a key now, revoke it"}
	}
	return u.Limits.Apply(Limits{}).Check()
}

// checkName keeps names to a line of printable text, since lists and logs
// show them as they are.
func checkName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return &FieldError{Field: "name", Problem: "must not be empty: a label that says what the key is for"}
	case len(name) > MaxKeyName:
		return &FieldError{Field: "name", Problem: fmt.Sprintf("must be at most %d bytes, got %d", MaxKeyName, len(name))}
	case !utf8.ValidString(name) || strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return &FieldError{Field: "name", Problem: "must be printable text, without control characters, tabs or line breaks"}
	}
	return nil
}

func checkAllowList(field, items string, list []string) error {
	if len(list) > MaxAllowList {
		return &FieldError{Field: field, Problem: fmt.Sprintf("must list at most %d %s, got %d", MaxAllowList, items, len(list))}
	}
	for _, v := range list {
		if strings.TrimSpace(v) == "" {
			return &FieldError{Field: field, Problem: "must not contain empty " + items}
		}
	}
	return nil
}
