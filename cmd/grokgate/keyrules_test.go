package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// keyInput is one key setting, as either surface can be given it.
type keyInput struct {
	what    string
	name    *string // nil: left out
	role    string  // "": left out
	models  []string
	tools   []string
	expires time.Time
	limits  map[string]int64
	ok      bool // the rules accept it
}

func (in keyInput) cliArgs() []string {
	var args []string
	if in.name != nil {
		args = append(args, "--name", *in.name)
	}
	if in.role != "" {
		args = append(args, "--role", in.role)
	}
	if in.models != nil {
		args = append(args, "--models", strings.Join(in.models, ","))
	}
	if in.tools != nil {
		args = append(args, "--tools", strings.Join(in.tools, ","))
	}
	if !in.expires.IsZero() {
		args = append(args, "--expires", in.expires.Format(time.RFC3339))
	}
	for name, v := range in.limits {
		args = append(args, "--"+flagForField(name), fmt.Sprint(v))
	}
	return args
}

func (in keyInput) adminBody() string {
	body := map[string]any{}
	if in.name != nil {
		body["name"] = *in.name
	}
	if in.role != "" {
		body["role"] = in.role
	}
	if in.models != nil {
		body["allowed_models"] = in.models
	}
	if in.tools != nil {
		body["allowed_tools"] = in.tools
	}
	if !in.expires.IsZero() {
		body["expires_at"] = in.expires.Format(time.RFC3339)
	}
	for name, v := range in.limits {
		body[name] = v
	}
	b, _ := json.Marshal(body)
	return string(b)
}

// TestKeyRulesAgree feeds one table of key settings to the CLI and to the
// admin API, on create and on update, and checks they accept and refuse the
// same ones and store the same key for those they accept.
func TestKeyRulesAgree(t *testing.T) {
	str := func(s string) *string { return &s }
	many := make([]string, grokgate.MaxAllowList+1)
	for i := range many {
		many[i] = fmt.Sprintf("model-%d", i)
	}
	future := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	cases := []keyInput{
		{what: "a plain name", name: str("ci-bot"), ok: true},
		{what: "a padded name", name: str("  padded  "), ok: true},
		{what: "a name of every script", name: str("café ☕ 東京"), ok: true},
		{what: "the longest name", name: str(strings.Repeat("n", grokgate.MaxKeyName)), ok: true},
		{what: "a name too long", name: str(strings.Repeat("n", grokgate.MaxKeyName+1))},
		{what: "no name", name: nil},
		{what: "an empty name", name: str("")},
		{what: "a blank name", name: str("   ")},
		{what: "a name with a tab", name: str("a\tb")},
		{what: "a name with a line break", name: str("a\nb")},
		{what: "a name with a terminal escape", name: str("a\x1b[31mb")},
		{what: "the admin role", name: str("r"), role: "admin", ok: true},
		{what: "an unknown role", name: str("r"), role: "root"},
		{what: "models", name: str("m"), models: []string{"grok-4", " grok-3 ", "grok-4"}, ok: true},
		{what: "no models", name: str("m"), models: []string{}, ok: true},
		{what: "a blank model", name: str("m"), models: []string{"grok-4", " "}},
		{what: "an empty model", name: str("m"), models: []string{"grok-4", "", "grok-3"}},
		{what: "the most models", name: str("m"), models: many[:grokgate.MaxAllowList], ok: true},
		{what: "too many models", name: str("m"), models: many},
		{what: "server-side tools", name: str("t"), tools: []string{"web_search", "x_search"}, ok: true},
		{what: "an unknown tool", name: str("t"), tools: []string{"web_search", "browser"}},
		{what: "a tool in capitals", name: str("t"), tools: []string{"WEB_SEARCH"}},
		{what: "an empty tool", name: str("t"), tools: []string{"web_search", ""}},
		{what: "an expiry to come", name: str("e"), expires: future, ok: true},
		{what: "an expiry gone by", name: str("e"), expires: time.Now().Add(-time.Hour)},
		{what: "limits", name: str("l"), limits: map[string]int64{"rpm": 5, "tpm": -1, "max_streams": 0}, ok: true},
		{what: "a limit below -1", name: str("l"), limits: map[string]int64{"budget_ticks_per_day": -2}},
	}

	g := startGW(t, nil)
	ctx := context.Background()
	admin := func(method, path, body string) (int, map[string]any) {
		resp, b, err := call(t, ctx, method, g.URL+path, g.AdminKey, body)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		json.Unmarshal(b, &v)
		return resp.StatusCode, v
	}
	stored := func(id string) grokgate.Key {
		st, err := openStore(ctx, g.DB)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		k, err := st.KeyByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	same := func(a, b grokgate.Key) bool {
		return a.Name == b.Name && a.Role == b.Role && reflect.DeepEqual(a.AllowedModels, b.AllowedModels) &&
			reflect.DeepEqual(a.AllowedTools, b.AllowedTools) && a.ExpiresAt.Equal(b.ExpiresAt) && a.Limits == b.Limits
	}
	createdRe := regexp.MustCompile(`Created key (key_[0-9a-f]+)`)
	_, base := admin("POST", "/admin/v1/keys", `{"name":"base"}`)
	baseID, _ := base["id"].(string)

	for _, c := range cases {
		out, cliErr := cli(t, nil, append([]string{"keys", "create", "--db", g.DB}, c.cliArgs()...)...)
		status, v := admin("POST", "/admin/v1/keys", c.adminBody())
		if (cliErr == nil) != c.ok || (status == 201) != c.ok {
			t.Errorf("create with %s: CLI err %v, admin API %d %v; want both to accept: %v", c.what, cliErr, status, v, c.ok)
			continue
		}
		if !c.ok {
			if status != 400 {
				t.Errorf("create with %s: admin API %d, want 400", c.what, status)
			}
			continue
		}
		m := createdRe.FindStringSubmatch(out)
		id, _ := v["id"].(string)
		if m == nil || id == "" {
			t.Fatalf("create with %s: no key id in %q or %v", c.what, out, v)
		}
		if a, b := stored(m[1]), stored(id); !same(a, b) {
			t.Errorf("create with %s: the CLI stored %+v, the admin API %+v", c.what, a, b)
		}
	}

	for _, c := range cases {
		if c.role != "" || c.name == nil {
			continue // update changes neither the role nor needs a name
		}
		_, cliErr := cli(t, nil, append([]string{"keys", "update", baseID, "--db", g.DB}, c.cliArgs()...)...)
		afterCLI := stored(baseID)
		status, v := admin("PATCH", "/admin/v1/keys/"+baseID, c.adminBody())
		afterAPI := stored(baseID)
		if (cliErr == nil) != c.ok || (status == 200) != c.ok {
			t.Errorf("update with %s: CLI err %v, admin API %d %v; want both to accept: %v", c.what, cliErr, status, v, c.ok)
		}
		if c.ok && !same(afterCLI, afterAPI) {
			t.Errorf("update with %s: the CLI stored %+v, the admin API %+v", c.what, afterCLI, afterAPI)
		}
	}
}
