// End-to-end: grokgate retries a failing xAI call itself, then tells the
// SDK not to retry again (x-should-retry: false), so one SDK call costs at
// most GROKGATE_UPSTREAM_ATTEMPTS upstream calls, not those times the SDK's
// own retries.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';

import { startGrokgate } from './grokgate.js';

const attempts = 2;

async function upstreamCalls(gg) {
  const res = await fetch(new URL('/sim/stats', gg.simulatorURL));
  assert.equal(res.status, 200);
  return (await res.json()).requests;
}

describe('retries are not multiplied', () => {
  let gg;
  before(async () => {
    gg = await startGrokgate(['--upstream-attempts', String(attempts)]);
  });
  after(async () => {
    await gg.stop();
  });

  it('openai-node makes one call after grokgate gave up on an upstream 500', async () => {
    const client = new OpenAI({ baseURL: gg.baseURL, apiKey: gg.adminKey, maxRetries: 5, timeout: 30_000 });
    const before = await upstreamCalls(gg);
    const err = await client.chat.completions
      .create({ model: 'grok-4.3', messages: [{ role: 'user', content: '#sim{"status":500} hi' }] })
      .then(() => null, (e) => e);
    assert.ok(err instanceof OpenAI.APIError, `expected an APIError, got ${err}`);
    assert.equal(err.status, 502);
    assert.equal(err.headers.get('x-should-retry'), 'false');
    assert.equal(err.headers.get('x-upstream-attempts'), String(attempts));
    assert.equal((await upstreamCalls(gg)) - before, attempts);
  });

  it('a refusal grokgate makes itself is still left to the SDK', async () => {
    const client = new OpenAI({ baseURL: gg.baseURL, apiKey: gg.adminKey, maxRetries: 0 });
    const err = await client.chat.completions
      .create({ model: 'grok-4.3', messages: [] })
      .then(() => null, (e) => e);
    assert.equal(err.status, 400);
    assert.equal(err.headers.get('x-should-retry'), null);
  });
});
