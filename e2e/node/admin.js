// grokgate's admin API as the end-to-end tests use it: more keys than the
// admin key the server prints, and the usage ledger.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

async function admin(gg, method, path, body) {
  const res = await fetch(gg.origin + path, {
    method,
    headers: { authorization: `Bearer ${gg.adminKey}`, ...(body && { 'content-type': 'application/json' }) },
    body: body && JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** Creates a key with the admin API's fields (name, allowed_tools, ...); returns its view with the secret. */
export function createKey(gg, fields) {
  return admin(gg, 'POST', '/admin/v1/keys', fields);
}

/**
 * The ledger's totals of key id once it holds `requests` records: usage is
 * written when a request ends, which the client may see a moment before.
 */
export async function usageOfKey(gg, id, requests, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { data } = await admin(gg, 'GET', '/admin/v1/usage?group_by=key');
    const row = data.find((r) => r.key_id === id);
    if ((row?.requests ?? 0) >= requests || Date.now() > deadline) return row;
    await sleep(50);
  }
}
