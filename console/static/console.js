// grokgate console. Every call goes to grokgate's own API with the session
// cookie; state-changing ones carry the page's CSRF token. Data is put on
// the page with textContent and DOM nodes only, never as HTML.
'use strict';
(() => {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || '';
  const page = document.body.dataset.page;
  const admin = document.body.dataset.role === 'admin';
  const $ = (id) => document.getElementById(id);

  // el builds an element; string children become text nodes.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }
  const svg = (tag, attrs) => {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  };

  async function api(method, path, body) {
    const opts = { method, headers: {}, credentials: 'same-origin' };
    if (method !== 'GET') opts.headers['X-CSRF-Token'] = csrf;
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    if (r.status === 401) {
      location.href = '/console/login';
      throw new Error('Your session has ended; sign in again.');
    }
    const j = await r.json().catch(() => null);
    if (!r.ok) throw new Error((j && j.error && j.error.message) || 'HTTP ' + r.status);
    return j;
  }
  function showError(e) {
    const p = $('error');
    p.textContent = e && e.message ? e.message : String(e);
    p.hidden = false;
  }
  function clearError() { $('error').hidden = true; }

  const TICKS_PER_USD = 1e10;
  // usd shows cents, and a small non-zero cost to two significant digits
  // rather than as a misleading $0.0000.
  const usd = (t) => '$' + (t / TICKS_PER_USD).toFixed(t === 0 || Math.abs(t) >= 1e8 ? 2 : Math.min(10, 12 - Math.ceil(Math.log10(Math.abs(t) + 1))));
  const num = (n) => Number(n || 0).toLocaleString('en-US');
  const day = (d) => d.toISOString().slice(0, 10); // the API's UTC days
  const when = (s) => s ? new Date(s).toISOString().replace('T', ' ').slice(0, 19) : '';
  const tokens = (r) => r.total_tokens !== undefined ? r.total_tokens : r.prompt_tokens + r.completion_tokens + r.reasoning_tokens;
  const usageBase = admin ? '/admin/v1/usage' : '/api/v1/me/usage';
  function rowsOf(tbody, rows) {
    tbody.replaceChildren(...rows);
    if (!rows.length) tbody.append(el('tr', {}, el('td', { colspan: 20, class: 'hint' }, 'Nothing yet.')));
  }

  // barChart draws stacked bars, one series ({name, values}) a colour, with
  // an optional line; fmt formats a bar's value. Names are user input (model
  // names): they reach the page as text nodes only. width is the box's, so
  // the SVG's text is drawn unstretched.
  function barChart(width, labels, series, fmt, line, lineFmt) {
    const W = Math.max(280, Math.round(width) || 800), H = 180, L = 56, B = 24, T = 14;
    const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img' });
    const totals = labels.map((_, i) => series.reduce((a, se) => a + se.values[i], 0));
    const maxB = Math.max(1, ...totals), maxL = Math.max(1, ...(line || [0]));
    const bw = (W - L - 8) / Math.max(1, labels.length), scale = (H - B - T) / maxB;
    const barW = Math.max(1, Math.min(bw - 2, 48)), pad = (bw - barW) / 2; // one bar is a bar, not a slab
    s.append(svg('line', { x1: L, y1: H - B, x2: W, y2: H - B, class: 'axis' }));
    const top = svg('text', { x: 4, y: T + 10 }); top.textContent = fmt(maxB); s.append(top);
    const base = labels.map(() => H - B);
    series.forEach((se, k) => {
      const g = svg('g', { class: 's' + Math.min(k, 5), 'data-series': se.name });
      se.values.forEach((v, i) => {
        if (!v) return;
        const h = v * scale;
        base[i] -= h;
        const r = svg('rect', { x: L + i * bw + pad, y: base[i], width: barW, height: h, 'data-value': v });
        const tip = svg('title'); tip.textContent = `${labels[i]} · ${se.name}: ${fmt(v)}`; r.append(tip);
        g.append(r);
      });
      s.append(g);
    });
    // As many labels as fit, each cut to what its slot holds.
    const every = Math.ceil(labels.length / Math.max(1, Math.floor((W - L) / 70))), chars = Math.max(5, Math.floor(bw * every / 7));
    labels.forEach((lab, i) => {
      if (i % every === 0) {
        const t = svg('text', { x: L + i * bw + bw / 2, y: H - 6, 'text-anchor': 'middle' });
        t.textContent = String(lab).length > chars ? String(lab).slice(0, chars - 1) + '…' : String(lab); s.append(t);
      }
    });
    if (line) {
      const y = (v) => H - B - (v / maxL) * (H - B - T);
      s.append(svg('polyline', { points: line.map((v, i) => `${L + i * bw + bw / 2},${y(v)}`).join(' '), class: 'line' }));
      line.forEach((v, i) => s.append(svg('circle', { cx: L + i * bw + bw / 2, cy: y(v), r: 3, class: 'dot' })));
      const lt = svg('text', { x: W - 4, y: T - 2, 'text-anchor': 'end' }); lt.textContent = lineFmt(maxL); s.append(lt);
    }
    return s;
  }
  function legend(names, lineName) {
    const box = el('div', { class: 'legend' }, ...names.map((n, k) => el('span', { 'data-series': n }, el('span', { class: 'swatch s' + Math.min(k, 5) }), n)));
    if (lineName) box.append(el('span', {}, '— ' + lineName));
    return box;
  }

  // modelsByDay fetches the daily series of the period's top models by cost,
  // and one of "other models" (the day's total minus theirs), over days.
  const TOP_MODELS = 5;
  async function modelsByDay(from, days, total) {
    const models = (await api('GET', `${usageBase}?group_by=model&from=${from}`)).data
      .sort((a, b) => b.cost_in_usd_ticks - a.cost_in_usd_ticks || b.requests - a.requests || (a.model < b.model ? -1 : 1));
    const top = models.slice(0, TOP_MODELS);
    const per = await Promise.all(top.map((m) => api('GET', `${usageBase}?group_by=day&from=${from}&model=${encodeURIComponent(m.model)}`)));
    const series = top.map((m, k) => {
      const byDay = new Map(per[k].data.map((r) => [r.day, r]));
      return { name: m.model, rows: days.map((d) => byDay.get(d)) };
    });
    if (models.length > TOP_MODELS) {
      // Math.max: a record landing between the queries must not draw below zero.
      const rest = (i, f) => Math.max(0, ((total.get(days[i]) || {})[f] || 0) - series.reduce((a, se) => a + (se.rows[i] ? se.rows[i][f] : 0), 0));
      series.push({ name: 'other models', rows: days.map((_, i) => ({ requests: rest(i, 'requests'), cost_in_usd_ticks: rest(i, 'cost_in_usd_ticks') })) });
    }
    return series;
  }

  // ---- Overview
  async function overview() {
    const now = new Date(), today = day(now), monthStart = today.slice(0, 8) + '01';
    const from30 = day(new Date(now.getTime() - 29 * 864e5));
    const from = from30 < monthStart ? from30 : monthStart;
    const [days, models] = await Promise.all([
      api('GET', `${usageBase}?group_by=day&from=${from}`),
      api('GET', `${usageBase}?group_by=model&from=${monthStart}`)]);
    const sum = (rows) => rows.reduce((a, r) => ({ n: a.n + r.requests, t: a.t + r.total_tokens, c: a.c + r.cost_in_usd_ticks }), { n: 0, t: 0, c: 0 });
    const t = sum(days.data.filter((r) => r.day === today)), m = sum(days.data.filter((r) => r.day >= monthStart));
    $('today-requests').textContent = num(t.n) + ' requests'; $('today-tokens').textContent = num(t.t); $('today-cost').textContent = usd(t.c);
    $('month-requests').textContent = num(m.n) + ' requests'; $('month-tokens').textContent = num(m.t); $('month-cost').textContent = usd(m.c);
    const last30 = [];
    for (let i = 29; i >= 0; i--) last30.push(day(new Date(now.getTime() - i * 864e5)));
    const series = await modelsByDay(from30, last30, new Map(days.data.map((r) => [r.day, r])));
    const labels = last30.map((d) => d.slice(5)), of = (f) => series.map((se) => ({ name: se.name, values: se.rows.map((r) => r ? r[f] : 0) }));
    $('chart-days').replaceChildren(
      el('h3', {}, 'Cost'), el('div', { id: 'chart-cost' }, barChart($('chart-days').clientWidth, labels, of('cost_in_usd_ticks'), usd)),
      el('h3', {}, 'Requests'), el('div', { id: 'chart-requests' }, barChart($('chart-days').clientWidth, labels, of('requests'), num)),
      legend(series.map((se) => se.name)));
    rowsOf($('by-model').tBodies[0], models.data.sort((a, b) => b.cost_in_usd_ticks - a.cost_in_usd_ticks).map((r) =>
      el('tr', {}, el('td', {}, r.model), el('td', { class: 'n' }, num(r.requests)), el('td', { class: 'n' }, num(r.total_tokens)), el('td', { class: 'n' }, usd(r.cost_in_usd_ticks)))));
    if (admin) {
      const ks = await api('GET', `/admin/v1/usage?group_by=key&from=${monthStart}`);
      rowsOf($('top-keys').tBodies[0], ks.data.sort((a, b) => b.cost_in_usd_ticks - a.cost_in_usd_ticks).slice(0, 10).map((r) =>
        el('tr', {}, el('td', { title: r.key_id }, r.key_name || r.key_id), el('td', { class: 'n' }, num(r.requests)), el('td', { class: 'n' }, num(r.total_tokens)), el('td', { class: 'n' }, usd(r.cost_in_usd_ticks)))));
      live();
      setInterval(live, 3000);
    } else {
      const me = await api('GET', '/api/v1/me');
      const dl = $('my-limits');
      const lim = (v, f) => v === 0 ? 'server default' : v < 0 ? 'none' : f(v);
      for (const [k, v] of [['Requests per minute', lim(me.limits.rpm, num)], ['Tokens per minute', lim(me.limits.tpm, num)],
        ['Open streams', lim(me.limits.max_streams, num)], ['Budget per day', lim(me.limits.budget_ticks_per_day, usd)],
        ['Budget per month', lim(me.limits.budget_ticks_per_month, usd)], ['Models', me.allowed_models.join(', ') || 'every model'],
        ['Expires', me.expires_at ? when(me.expires_at) : 'never']]) dl.append(el('dt', {}, k), el('dd', {}, v));
    }
  }
  async function live() {
    try {
      const l = await api('GET', '/admin/v1/live');
      $('live-streams').textContent = num(l.open_streams);
      $('live-rps').textContent = l.requests_per_second.toFixed(1);
      $('live-errors').textContent = (l.error_rate * 100).toFixed(1) + '%';
    } catch (e) { $('live-streams').textContent = '–'; }
  }

  // ---- Keys
  let keyList = [];
  function limitsText(l) {
    const parts = [];
    if (l.rpm) parts.push(`${l.rpm < 0 ? '∞' : l.rpm} rpm`);
    if (l.tpm) parts.push(`${l.tpm < 0 ? '∞' : l.tpm} tpm`);
    if (l.max_streams) parts.push(`${l.max_streams < 0 ? '∞' : l.max_streams} streams`);
    if (l.budget_ticks_per_day) parts.push(`${l.budget_ticks_per_day < 0 ? '∞' : usd(l.budget_ticks_per_day)}/day`);
    if (l.budget_ticks_per_month) parts.push(`${l.budget_ticks_per_month < 0 ? '∞' : usd(l.budget_ticks_per_month)}/month`);
    return parts.join(', ') || 'defaults';
  }
  function drawKeys() {
    const q = $('key-search').value.trim().toLowerCase(), st = $('key-status').value;
    const rows = keyList.filter((k) => (!st || k.status === st) &&
      (!q || k.name.toLowerCase().includes(q) || k.id.includes(q) || k.prefix.toLowerCase().includes(q))).map((k) => {
      const actions = el('td', {});
      if (k.status !== 'revoked') {
        actions.append(el('button', { type: 'button', class: 'quiet', 'data-edit': k.id, onclick: () => editKey(k) }, 'Edit'));
        const revoke = el('button', { type: 'button', class: 'quiet', 'data-revoke': k.id }, 'Revoke');
        revoke.addEventListener('click', async () => {
          if (!revoke.classList.contains('danger')) { // first click asks
            revoke.classList.add('danger'); revoke.textContent = 'Confirm revoke';
            return;
          }
          try { await api('POST', `/admin/v1/keys/${encodeURIComponent(k.id)}/revoke`); clearError(); await loadKeys(); } catch (e) { showError(e); }
        });
        actions.append(revoke);
      }
      return el('tr', { 'data-key': k.id }, el('td', { class: 'name' }, k.name), el('td', {}, el('code', {}, k.id)), el('td', {}, k.role),
        el('td', { class: 'status status-' + k.status }, k.status), el('td', { class: 'wrap' }, k.allowed_models.join(', ') || 'all'),
        el('td', { class: 'wrap' }, limitsText(k.limits)), el('td', {}, when(k.created_at)), actions);
    });
    rowsOf($('keys').tBodies[0], rows);
  }
  async function loadKeys() { keyList = (await api('GET', '/admin/v1/keys')).data.reverse(); drawKeys(); }
  const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
  function editKey(k) {
    const f = $('key-form');
    f.hidden = false; $('secret-box').hidden = true;
    $('key-form-title').textContent = k ? 'Edit ' + k.name : 'New key';
    $('f-save').textContent = k ? 'Save' : 'Create';
    $('role-field').hidden = !!k;
    $('f-id').value = k ? k.id : '';
    $('f-name').value = k ? k.name : '';
    $('f-role').value = 'user';
    $('f-models').value = k ? k.allowed_models.join(', ') : '';
    $('f-tools').value = k ? k.allowed_tools.join(', ') : '';
    for (const n of ['rpm', 'tpm', 'max_streams']) $('f-' + n).value = k && k.limits[n] ? k.limits[n] : '';
    const b = (t) => t > 0 ? t / TICKS_PER_USD : t < 0 ? -1 : '';
    $('f-budget_day').value = k ? b(k.limits.budget_ticks_per_day) : '';
    $('f-budget_month').value = k ? b(k.limits.budget_ticks_per_month) : '';
    $('f-expires').value = k && k.expires_at ? k.expires_at.slice(0, 16) : '';
    $('f-name').focus();
  }
  async function saveKey(ev) {
    ev.preventDefault();
    const id = $('f-id').value, body = { name: $('f-name').value, allowed_models: list($('f-models').value), allowed_tools: list($('f-tools').value) };
    for (const n of ['rpm', 'tpm', 'max_streams']) body[n] = $('f-' + n).value === '' ? 0 : parseInt($('f-' + n).value, 10);
    const ticks = (v) => v === '' ? 0 : Number(v) < 0 ? -1 : Math.round(Number(v) * TICKS_PER_USD);
    body.budget_ticks_per_day = ticks($('f-budget_day').value);
    body.budget_ticks_per_month = ticks($('f-budget_month').value);
    const exp = $('f-expires').value;
    if (exp) body.expires_at = new Date(exp + 'Z').toISOString().replace('.000', '');
    else if (id) body.expires_at = null;
    try {
      if (id) {
        await api('PATCH', `/admin/v1/keys/${encodeURIComponent(id)}`, body);
      } else {
        body.role = $('f-role').value;
        const k = await api('POST', '/admin/v1/keys', body);
        $('secret').textContent = k.key; $('secret-box').hidden = false; $('copied').hidden = true;
      }
      $('key-form').hidden = true; clearError();
      await loadKeys();
    } catch (e) { showError(e); }
  }
  function keys() {
    $('key-search').addEventListener('input', drawKeys);
    $('key-status').addEventListener('change', drawKeys);
    $('new-key').addEventListener('click', () => editKey(null));
    $('f-cancel').addEventListener('click', () => { $('key-form').hidden = true; });
    $('key-form').addEventListener('submit', saveKey);
    $('copy-secret').addEventListener('click', async () => {
      try { await navigator.clipboard.writeText($('secret').textContent); $('copied').hidden = false; } catch (e) { showError(new Error('Copy failed: select the key and copy it.')); }
    });
    return loadKeys();
  }

  // ---- Usage
  let usageRows = [], usageGroup = 'key';
  async function loadUsage() {
    usageGroup = $('u-group').value;
    const q = new URLSearchParams({ group_by: usageGroup });
    if ($('u-from').value) q.set('from', $('u-from').value);
    if ($('u-to').value) q.set('to', $('u-to').value);
    const u = await api('GET', `${usageBase}?${q}`);
    usageRows = u.data;
    const groupCol = usageGroup === 'key' ? 'Key' : usageGroup === 'model' ? 'Model' : 'Day';
    $('usage').tHead.replaceChildren(el('tr', {}, ...[groupCol, 'Requests', 'Completed', 'Prompt', 'Completion', 'Reasoning', 'Cached', 'Total tokens', 'Tool calls', 'Cost']
      .map((h, i) => el('th', i ? { class: 'n' } : {}, h))));
    const label = (r) => usageGroup === 'key' ? (r.key_name || r.key_id) : r[usageGroup];
    rowsOf($('usage').tBodies[0], usageRows.map((r) => el('tr', {}, el('td', usageGroup === 'key' ? { title: r.key_id } : {}, label(r)),
      ...[r.requests, r.completed_requests, r.prompt_tokens, r.completion_tokens, r.reasoning_tokens, r.cached_tokens, r.total_tokens, r.tool_calls]
        .map((v) => el('td', { class: 'n' }, num(v))), el('td', { class: 'n' }, usd(r.cost_in_usd_ticks)))));
    $('chart-usage').replaceChildren(barChart($('chart-usage').clientWidth, usageRows.map(label), [{ name: 'cost', values: usageRows.map((r) => r.cost_in_usd_ticks) }], usd,
      usageRows.map((r) => r.requests), (v) => num(v) + ' requests'), legend(['cost'], 'requests'));
  }
  function csvCell(v) {
    let s = String(v);
    if (/^[=+\-@\t\r]/.test(s)) s = "'" + s; // not a formula in a spreadsheet
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function downloadCSV() {
    const cols = usageRows.length ? Object.keys(usageRows[0]).filter((c) => c !== 'tool_call_details') : [];
    const lines = [cols.join(',')].concat(usageRows.map((r) => cols.map((c) => csvCell(r[c])).join(',')));
    const a = el('a', { download: `grokgate-usage-by-${usageGroup}.csv` });
    a.href = URL.createObjectURL(new Blob([lines.join('\r\n') + '\r\n'], { type: 'text/csv' }));
    document.body.append(a); a.click(); a.remove();
  }
  function usage() {
    const now = new Date();
    $('u-from').value = day(new Date(now.getTime() - 29 * 864e5));
    $('u-to').value = day(now);
    for (const id of ['u-from', 'u-to', 'u-group']) $(id).addEventListener('change', () => loadUsage().catch(showError));
    $('u-csv').addEventListener('click', downloadCSV);
    return loadUsage();
  }

  // ---- Requests
  let next = null;
  async function loadRequests(more) {
    const q = new URLSearchParams({ limit: '50' });
    const add = (k, id) => { const e = $(id); if (e && e.value.trim()) q.set(k, e.value.trim()); };
    add('key_id', 'r-key'); add('model', 'r-model'); add('outcome', 'r-outcome'); add('status', 'r-status');
    if (more && next) q.set('before', next);
    const p = await api('GET', `${admin ? '/admin/v1/requests' : '/api/v1/me/requests'}?${q}`);
    next = p.next_before;
    $('r-more').hidden = !next;
    const rows = p.data.map((r) => el('tr', { class: 'click', 'data-request': r.request_id, onclick: () => detail(r) },
      el('td', { title: when(r.time) }, when(r.time).slice(5)), el('td', { title: r.key_id }, r.key_name || r.key_id), el('td', { class: 'wrap' }, r.model || r.requested_model),
      el('td', {}, r.route), el('td', {}, r.stream ? 'yes' : ''), el('td', { class: 'n ' + (r.status < 400 ? 'ok' : 'bad') }, r.status),
      el('td', {}, r.outcome), el('td', { class: 'n' }, num(r.total_tokens)), el('td', { class: 'n' }, usd(r.cost_in_usd_ticks)),
      el('td', { class: 'n' }, r.latency_ms.toFixed(0) + ' ms'), el('td', { class: 'n' }, r.ttfb_ms ? r.ttfb_ms.toFixed(0) + ' ms' : ''),
      el('td', {}, el('code', {}, r.request_id))));
    const tb = $('requests').tBodies[0];
    if (more) tb.append(...rows); else rowsOf(tb, rows);
  }
  function detail(r) {
    $('detail').hidden = false;
    $('detail-id').textContent = r.request_id;
    const dl = $('detail-fields');
    dl.replaceChildren();
    for (const [k, v] of Object.entries(r)) {
      if (k === 'object') continue;
      dl.append(el('dt', {}, k), el('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v)));
    }
    $('detail').scrollIntoView({ block: 'nearest' });
  }
  function requests() {
    $('r-apply').addEventListener('click', () => loadRequests(false).catch(showError));
    $('r-more').addEventListener('click', () => loadRequests(true).catch(showError));
    return loadRequests(false);
  }

  // ---- Playground
  let abort = null;
  function showUsage(prefix, u) {
    $('p-usage').textContent = prefix + `${num(u.prompt_tokens)} prompt + ${num(u.completion_tokens)} completion tokens` +
      (u.cost_in_usd_ticks !== undefined ? ' · ' + usd(u.cost_in_usd_ticks) : '');
  }
  async function sendChat(ev) {
    ev.preventDefault();
    clearError();
    const reply = $('p-reply'), file = $('p-image').files[0];
    let content = $('p-prompt').value;
    if (file) {
      const url = await new Promise((ok, fail) => { const fr = new FileReader(); fr.onload = () => ok(fr.result); fr.onerror = fail; fr.readAsDataURL(file); });
      content = [{ type: 'text', text: content }, { type: 'image_url', image_url: { url } }];
    }
    reply.textContent = ''; $('p-usage').textContent = '';
    abort = new AbortController();
    $('p-send').disabled = true; $('p-stop').disabled = false;
    reply.dataset.state = 'streaming';
    try {
      const r = await fetch('/api/v1/chat/completions', { method: 'POST', credentials: 'same-origin', signal: abort.signal,
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
        body: JSON.stringify({ model: $('p-model').value, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content }] }) });
      if (!r.ok) {
        const j = await r.json().catch(() => null);
        throw new Error((j && j.error && j.error.message) || 'HTTP ' + r.status);
      }
      // With an image, the gateway's vision stream mode decides the answer:
      // emulate sends the whole answer as SSE, json as one JSON object.
      const whole = r.headers.get('X-Stream-Fallback') === 'true' ? 'answered whole: image input does not stream · ' : '';
      $('p-usage').textContent = whole;
      const ct = r.headers.get('Content-Type') || '';
      if (!ct.startsWith('text/event-stream')) {
        const j = await r.json();
        reply.textContent = j.choices[0].message.content || '';
        if (j.usage) showUsage(whole, j.usage);
        return;
      }
      const rd = r.body.getReader(), dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const evt = buf.slice(0, i); buf = buf.slice(i + 2);
          for (const line of evt.split('\n')) {
            if (!line.startsWith('data:')) continue;
            const data = line.slice(5).trim();
            if (data === '[DONE]') continue;
            const j = JSON.parse(data);
            if (j.error) throw new Error(typeof j.error === 'string' ? j.error : j.error.message);
            const d = j.choices && j.choices[0] && j.choices[0].delta;
            if (d && d.content) reply.textContent += d.content;
            if (j.usage) showUsage(whole, j.usage);
          }
        }
      }
    } catch (e) {
      if (e.name !== 'AbortError') showError(e);
    } finally {
      reply.dataset.state = 'done';
      $('p-send').disabled = false; $('p-stop').disabled = true;
    }
  }
  async function sendImage(ev) {
    ev.preventDefault();
    clearError();
    $('i-send').disabled = true;
    try {
      const j = await api('POST', '/api/v1/images/generations', { model: $('i-model').value, prompt: $('i-prompt').value, response_format: 'b64_json' });
      $('i-out').replaceChildren(...j.data.map((d) => { const img = el('img', { alt: $('i-prompt').value }); img.src = 'data:image/png;base64,' + d.b64_json; return img; }));
    } catch (e) { showError(e); } finally { $('i-send').disabled = false; }
  }
  async function playground() {
    $('chat-form').addEventListener('submit', sendChat);
    $('p-stop').addEventListener('click', () => abort && abort.abort());
    $('image-form').addEventListener('submit', sendImage);
    const m = await api('GET', '/api/v1/models');
    const sel = $('p-model');
    sel.replaceChildren(...m.data.filter((x) => !/imagine|image/.test(x.id)).map((x) => el('option', { value: x.id }, x.id)));
  }

  const pages = { overview, keys, usage, requests, playground };
  if (pages[page]) Promise.resolve().then(pages[page]).catch(showError);
})();
