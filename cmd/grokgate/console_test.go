package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium for the console's tests: skipped with a
// reason when none is installed, failed when GROKGATE_REQUIRE_SERVICES=1.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("GROKGATE_REQUIRE_SERVICES") == "1" {
			t.Fatal("no Chromium found (install Debian's chromium package) and GROKGATE_REQUIRE_SERVICES=1")
		}
		t.Skip("no Chromium found: install Debian's chromium package to run the console's browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// do runs steps, failing the test with what was being done.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is truthy.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

func signIn(t *testing.T, ctx context.Context, base, key, landing string) {
	t.Helper()
	do(t, ctx, "opening the sign-in page", chromedp.Navigate(base+"/console/login"), chromedp.WaitVisible("#key"),
		chromedp.SendKeys("#key", key), chromedp.Click("#signin"))
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, chromedp.WaitVisible(landing)); err != nil {
		page := eval[string](t, ctx, `location.href + ' ' + document.body.innerText`)
		t.Fatalf("signing in: %v; the browser shows %s", err, page)
	}
}

// api calls the gateway with a Bearer key and decodes the JSON answer.
func api(t *testing.T, method, url, key, body string, into any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

func js(s string) string { b, _ := json.Marshal(s); return string(b) }

var secretPattern = regexp.MustCompile(`^gg-[A-Za-z0-9_-]{43}$`)

func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	g := startGW(t, nil)
	base := g.URL

	// Security headers on every console answer.
	resp, err := http.Get(base + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("console headers: %v", resp.Header)
	}

	// A chat request through the API, before signing in.
	var done struct{ ID string }
	if st := api(t, "POST", base+"/api/v1/chat/completions", g.AdminKey, `{"model":"grok-4.3","messages":[{"role":"user","content":"hello"}]}`, &done); st != 200 {
		t.Fatalf("chat through the API: %d", st)
	}
	// More models, for the overview's chart: four answered, and three
	// unknown, two of them named in HTML, refused but recorded. Seven models
	// in all: the chart draws the top five by cost and "other models".
	for _, m := range []string{"grok-3", "grok-3-mini", "grok-4.5"} {
		if st := api(t, "POST", base+"/api/v1/chat/completions", g.AdminKey, `{"model":"`+m+`","messages":[{"role":"user","content":"hello"}]}`, nil); st != 200 {
			t.Fatalf("chat with %s through the API: %d", m, st)
		}
	}
	for _, m := range []string{"<img src=x onerror=alert(2)>", "<img src=x onerror=alert(2)>", "<b>bogus</b>", "nope"} {
		api(t, "POST", base+"/api/v1/chat/completions", g.AdminKey, `{"model":`+js(m)+`,"messages":[{"role":"user","content":"x"}]}`, nil)
	}

	signIn(t, ctx, base, g.AdminKey, "#today-requests")
	t.Run("OverviewCounts", func(t *testing.T) {
		// The ledger is written in batches: reload until both are in.
		deadline := time.Now().Add(10 * time.Second)
		for {
			do(t, ctx, "opening the overview", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible("#today-requests"))
			waitJS(t, ctx, "the overview's numbers", `document.getElementById('today-requests').textContent !== '…'`)
			if got := eval[string](t, ctx, `document.getElementById('today-requests').textContent`); got == "8 requests" {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("today's requests on the overview: %q, want 8 requests", got)
			}
			time.Sleep(200 * time.Millisecond)
		}
		waitJS(t, ctx, "live counters", `/^[0-9.]+$/.test(document.getElementById('live-rps').textContent)`)
	})

	t.Run("ChartByModel", func(t *testing.T) {
		// What the chart must show, from the API: the top five models by
		// cost (then requests), each its own series, the rest as one.
		var usage struct {
			Data []struct {
				Model    string
				Requests int
				Cost     int64 `json:"cost_in_usd_ticks"`
			}
		}
		if st := api(t, "GET", base+"/admin/v1/usage?group_by=model", g.AdminKey, "", &usage); st != 200 || len(usage.Data) != 7 {
			t.Fatalf("usage by model: %d %+v", st, usage)
		}
		sort.Slice(usage.Data, func(i, j int) bool {
			a, b := usage.Data[i], usage.Data[j]
			if a.Cost != b.Cost {
				return a.Cost > b.Cost
			}
			if a.Requests != b.Requests {
				return a.Requests > b.Requests
			}
			return a.Model < b.Model
		})
		var want [][2]any
		other := 0
		for i, m := range usage.Data {
			if i < 5 {
				want = append(want, [2]any{m.Model, float64(m.Requests)})
			} else {
				other += m.Requests
			}
		}
		want = append(want, [2]any{"other models", float64(other)})
		if want[4][0] != "<img src=x onerror=alert(2)>" || other != 2 {
			t.Fatalf("the test's models rank as %v: want the HTML-named one fifth and two other requests", want)
		}
		waitJS(t, ctx, "the chart", `document.querySelector('#chart-requests svg') !== null`)
		// Each series' requests, summed over its bars, and the legend's names.
		got := eval[[][2]any](t, ctx, `[...document.querySelectorAll('#chart-requests g[data-series]')].map(g =>
			[g.getAttribute('data-series'), [...g.querySelectorAll('rect')].reduce((a, r) => a + Number(r.getAttribute('data-value')), 0)])`)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("the requests chart's series: %v, want %v", got, want)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('#chart-cost g[data-series]').length`); n != len(want) {
			t.Errorf("the cost chart has %d series, want %d", n, len(want))
		}
		names := eval[[]any](t, ctx, `[...document.querySelectorAll('#chart-days .legend [data-series]')].map(e => e.textContent)`)
		for i, w := range want {
			if i >= len(names) || names[i] != w[0] {
				t.Errorf("the legend names %v, want %v in that order", names, want)
				break
			}
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('#chart-days img, #chart-days b').length`); n != 0 {
			t.Errorf("a model name in the chart became %d elements", n)
		}
	})

	t.Run("RequestsShowsTheChat", func(t *testing.T) {
		do(t, ctx, "opening requests", chromedp.Navigate(base+"/console/requests"))
		waitJS(t, ctx, "the chat's record", `[...document.querySelectorAll('#requests code')].some(c => c.textContent.startsWith('req_'))`)
		// The HTML model name is text, not an element.
		waitJS(t, ctx, "the HTML model's record", `[...document.querySelectorAll('#requests td')].some(td => td.textContent === '<img src=x onerror=alert(2)>')`)
		if n := eval[int](t, ctx, `document.querySelectorAll('#requests img').length`); n != 0 {
			t.Errorf("a model name became %d img elements", n)
		}
		do(t, ctx, "opening a record", chromedp.Click(`#requests tbody tr`), chromedp.WaitVisible("#detail"))
		if got := eval[string](t, ctx, `document.getElementById('detail-fields').textContent`); !strings.Contains(got, "upstream_id") || !strings.Contains(got, "ttfb_ms") {
			t.Errorf("request detail: %q", got)
		}
	})

	const xssName = `<img src=x onerror=alert(1)>`
	var created struct {
		ID, Name, Key string
		Limits        struct{ RPM, MaxStreams int64 } `json:"-"`
	}
	t.Run("CreateKey", func(t *testing.T) {
		do(t, ctx, "filling the new key form", chromedp.Navigate(base+"/console/keys"), chromedp.WaitVisible("#new-key"),
			chromedp.Click("#new-key"), chromedp.WaitVisible("#f-name"),
			chromedp.SendKeys("#f-name", xssName), chromedp.SendKeys("#f-models", "grok-4.3, <b>m</b>"),
			chromedp.SendKeys("#f-rpm", "7"), chromedp.SendKeys("#f-max_streams", "2"), chromedp.SendKeys("#f-budget_day", "1.5"),
			chromedp.Click("#f-save"), chromedp.WaitVisible("#secret"))
		secret := eval[string](t, ctx, `document.getElementById('secret').textContent`)
		if !secretPattern.MatchString(secret) {
			t.Fatalf("the secret shown: %q", secret)
		}
		var me struct {
			ID, Name      string
			AllowedModels []string `json:"allowed_models"`
			Limits        struct {
				RPM        int64 `json:"rpm"`
				MaxStreams int64 `json:"max_streams"`
				Day        int64 `json:"budget_ticks_per_day"`
			}
		}
		if st := api(t, "GET", base+"/api/v1/me", secret, "", &me); st != 200 || me.Name != xssName || me.Limits.RPM != 7 ||
			me.Limits.MaxStreams != 2 || me.Limits.Day != 15_000_000_000 || strings.Join(me.AllowedModels, ",") != "grok-4.3,<b>m</b>" {
			t.Fatalf("the created key, read with its secret: %d %+v", st, me)
		}
		created.ID, created.Name, created.Key = me.ID, me.Name, secret
		waitJS(t, ctx, "the key in the list", `document.querySelector('tr[data-key=`+js(me.ID)+`]') !== null`)
		if got := eval[string](t, ctx, `document.querySelector('tr[data-key=`+js(me.ID)+`] td.name').textContent`); got != xssName {
			t.Errorf("the key's name shows as %q", got)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('#keys img, #keys b').length`); n != 0 {
			t.Errorf("a key name or model became %d elements", n)
		}
	})

	t.Run("RevokeKey", func(t *testing.T) {
		sel := `button[data-revoke=` + js(created.ID) + `]`
		do(t, ctx, "revoking", chromedp.Click(sel), chromedp.WaitVisible(sel+`.danger`), chromedp.Click(sel+`.danger`))
		waitJS(t, ctx, "the revoked status", `document.querySelector('tr[data-key=`+js(created.ID)+`] td.status').textContent === 'revoked'`)
		eventually(t, 2*time.Second, "the revoked key refused", func() bool {
			return api(t, "GET", base+"/api/v1/me", created.Key, "", nil) == 401
		})
	})

	t.Run("PlaygroundStreams", func(t *testing.T) {
		do(t, ctx, "opening the playground", chromedp.Navigate(base+"/console/playground"))
		waitJS(t, ctx, "the models", `document.querySelectorAll('#p-model option').length > 0`)
		do(t, ctx, "sending a prompt", chromedp.SetValue("#p-model", "grok-4.3"),
			chromedp.SendKeys("#p-prompt", `count slowly #sim{"chunks":20,"delay_ms":80}`), chromedp.Click("#p-send"))
		const reply = `document.getElementById('p-reply')`
		waitJS(t, ctx, "the first text", reply+`.dataset.state === 'streaming' && `+reply+`.textContent.length > 0`)
		first := eval[int](t, ctx, reply+`.textContent.length`)
		waitJS(t, ctx, "the text growing while streaming", reply+`.dataset.state === 'streaming' && `+reply+`.textContent.length > `+itoa(first))
		waitJS(t, ctx, "the end of the stream", reply+`.dataset.state === 'done'`)
		if msg := eval[string](t, ctx, `document.getElementById('error').hidden ? '' : document.getElementById('error').textContent`); msg != "" {
			t.Errorf("playground error: %s", msg)
		}
		do(t, ctx, "generating an image", chromedp.SendKeys("#i-prompt", "a lighthouse"), chromedp.Click("#i-send"))
		waitJS(t, ctx, "the image", `(i => i && i.complete && i.naturalWidth > 0)(document.querySelector('#i-out img'))`)
	})

	t.Run("CSRFRefused", func(t *testing.T) {
		// The page's own session cookie, without the token: refused, and no key made.
		st := eval[int](t, ctx, `fetch('/admin/v1/keys', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{"name":"csrf"}'}).then(r => r.status)`)
		if st != 403 {
			t.Errorf("POST /admin/v1/keys with the cookie, without the CSRF token: %d", st)
		}
		var list struct{ Data []struct{ Name string } }
		api(t, "GET", base+"/admin/v1/keys", g.AdminKey, "", &list)
		for _, k := range list.Data {
			if k.Name == "csrf" {
				t.Error("the request without the CSRF token created a key")
			}
		}
	})

	if os.Getenv("GROKGATE_SCREENSHOTS") == "1" {
		screenshots(t, ctx, base)
	}

	t.Run("UserKeySeesOwnDataOnly", func(t *testing.T) {
		var user struct{ ID, Key string }
		if st := api(t, "POST", base+"/admin/v1/keys", g.AdminKey, `{"name":"alice"}`, &user); st != 201 {
			t.Fatalf("creating a user key: %d", st)
		}
		if st := api(t, "POST", base+"/api/v1/chat/completions", user.Key, `{"model":"grok-4.3","messages":[{"role":"user","content":"mine"}]}`, nil); st != 200 {
			t.Fatalf("the user's chat: %d", st)
		}
		do(t, ctx, "signing out", chromedp.Click("#signout"), chromedp.WaitVisible("#key"))
		signIn(t, ctx, base, user.Key, "#today-requests")
		// The chart has the user's model alone, from its own usage.
		waitJS(t, ctx, "the user's chart", `document.querySelector('#chart-requests svg') !== null`)
		if got := eval[string](t, ctx, `[...document.querySelectorAll('#chart-requests g[data-series]')].map(g => g.getAttribute('data-series')).join()`); got != "grok-4.3" {
			t.Errorf("a user key's chart series: %q, want its own model alone", got)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('nav a[href="/console/keys"]').length`); n != 0 {
			t.Error("a user key sees the Keys page in the menu")
		}
		do(t, ctx, "opening requests", chromedp.Navigate(base+"/console/requests"))
		waitJS(t, ctx, "the user's own request", `document.querySelectorAll('#requests tr[data-request]').length === 1`)
		if got := eval[string](t, ctx, `document.getElementById('requests').textContent`); strings.Contains(got, "admin") || strings.Contains(got, "<img") {
			t.Errorf("a user key's requests page shows another key's data: %q", got)
		}
		for path, want := range map[string]int{
			"/admin/v1/requests": 403, "/admin/v1/usage": 403, "/admin/v1/keys": 403,
			"/api/v1/me/requests?key_id=" + created.ID: 403, "/api/v1/me/usage": 200,
		} {
			if st := eval[int](t, ctx, `fetch(`+js(path)+`).then(r => r.status)`); st != want {
				t.Errorf("GET %s from a user's session: %d, want %d", path, st, want)
			}
		}
		do(t, ctx, "keys page", chromedp.Navigate(base+"/console/keys"))
		if got := eval[string](t, ctx, `document.querySelector('main').textContent`); !strings.Contains(got, "No such page") {
			t.Errorf("a user key opening /console/keys: %q", got)
		}

		// Revoking the key ends the session within 2s.
		if st := api(t, "POST", base+"/admin/v1/keys/"+user.ID+"/revoke", g.AdminKey, "", nil); st != 200 {
			t.Fatalf("revoking: %d", st)
		}
		start := time.Now()
		for eval[int](t, ctx, `fetch('/api/v1/me').then(r => r.status)`) != 401 {
			if time.Since(start) > 2*time.Second {
				t.Fatal("a revoked key's session still works after 2s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		do(t, ctx, "reopening the console", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible("#key"))
	})
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// screenshots saves each page at desktop and phone width, and some in the
// dark theme, under docs/console/.
func screenshots(t *testing.T, ctx context.Context, base string) {
	dir := filepath.Join("..", "..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shoot := func(name string, w, h int64, dark bool) {
		theme := "light"
		if dark {
			theme = "dark"
		}
		do(t, ctx, "theme", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: theme}}})
			return err
		}), chromedp.EmulateViewport(w, h))
		do(t, ctx, "opening "+name, chromedp.Navigate(base+"/console/"+name), chromedp.WaitVisible("main"))
		time.Sleep(700 * time.Millisecond) // the page's data arrives
		shot := chromedp.CaptureScreenshot()
		if w < 600 {
			shot = chromedp.FullScreenshot(100) // a phone scrolls: the whole page
		}
		png, err := chromedp.Run(ctx, shot)
		if err != nil {
			t.Fatal(err)
		}
		suffix := "desktop"
		if w < 600 {
			suffix = "phone"
		}
		if dark {
			suffix += "-dark"
		}
		if err := os.WriteFile(filepath.Join(dir, name+"-"+suffix+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"overview", "keys", "usage", "requests", "playground"} {
		shoot(p, 1280, 800, false)
		shoot(p, 390, 844, false)
	}
	shoot("overview", 1280, 800, true)
	shoot("overview", 390, 844, true)
	shoot("keys", 1280, 800, true)
	shoot("usage", 1280, 800, true)
	shoot("requests", 390, 844, true)
	shoot("playground", 390, 844, true)
	do(t, ctx, "back to desktop", chromedp.EmulateViewport(1280, 900))
}

// TestConsolePlaygroundVision attaches an image in the Playground and reads
// the answer in each vision stream mode that answers whole: emulate (the
// default; the answer as SSE) and json (one JSON object).
func TestConsolePlaygroundVision(t *testing.T) {
	ctx := browser(t)
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = 0xc0
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "grey.png")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"", "json"} {
		t.Run("mode="+mode, func(t *testing.T) {
			g := startGW(t, map[string]string{"GROKGATE_VISION_STREAM": mode})
			signIn(t, ctx, g.URL, g.AdminKey, "#today-requests")
			do(t, ctx, "opening the playground", chromedp.Navigate(g.URL+"/console/playground"))
			waitJS(t, ctx, "the models", `document.querySelectorAll('#p-model option').length > 0`)
			do(t, ctx, "sending a prompt with an image", chromedp.SetValue("#p-model", "grok-4.3"),
				chromedp.SendKeys("#p-prompt", "what is in this picture?"), chromedp.SetUploadFiles("#p-image", []string{file}),
				chromedp.Click("#p-send"))
			waitJS(t, ctx, "the answer", `document.getElementById('p-reply').dataset.state === 'done'`)
			if msg := eval[string](t, ctx, `document.getElementById('error').hidden ? '' : document.getElementById('error').textContent`); msg != "" {
				t.Fatalf("playground error: %s", msg)
			}
			if got := eval[string](t, ctx, `document.getElementById('p-reply').textContent`); strings.TrimSpace(got) == "" {
				t.Error("no answer shown")
			}
			// The image was counted: the simulator bills 256 prompt tokens an image.
			got := eval[string](t, ctx, `document.getElementById('p-usage').textContent`)
			m := regexp.MustCompile(`^answered whole: image input does not stream · ([0-9,]+) prompt \+ [0-9,]+ completion tokens`).FindStringSubmatch(got)
			if m == nil {
				t.Fatalf("usage line: %q", got)
			}
			if n, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", "")); n < 256 {
				t.Errorf("prompt tokens %d: the image was not sent (usage line %q)", n, got)
			}
			var recs struct {
				Data []struct {
					Stream bool
					Model  string
					Status int
				}
			}
			eventually(t, 5*time.Second, "the vision request in the ledger", func() bool {
				return api(t, "GET", g.URL+"/admin/v1/requests?limit=1", g.AdminKey, "", &recs) == 200 && len(recs.Data) == 1 && recs.Data[0].Stream && recs.Data[0].Model == "grok-4.3" && recs.Data[0].Status == 200
			})
		})
	}
}
