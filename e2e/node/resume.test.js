// End-to-end: streams that survive a dropped connection, through the openai
// npm package, unmodified: a background response (responses.create with
// background: true, responses.retrieve with stream and starting_after,
// responses.cancel) and a resumable chat stream picked up with
// Last-Event-ID, as a browser EventSource would send it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';

import { createKey } from './admin.js';
import { startGrokgate } from './grokgate.js';

let gg;
let keyB; // another user key: someone else's response is a 404 to it

function client(apiKey = gg.adminKey) {
  return new OpenAI({ baseURL: gg.baseURL, apiKey, maxRetries: 0, timeout: 20_000 });
}

// Reads SSE events (id and data) from a fetch response to its end.
async function sseEvents(res) {
  const text = await res.text();
  return text.split('\n\n').filter((b) => b.trim() && !b.startsWith(':')).map((block) => {
    const ev = {};
    for (const line of block.split('\n')) {
      if (line.startsWith('id: ')) ev.id = line.slice(4);
      if (line.startsWith('data: ')) ev.data = line.slice(6);
    }
    return ev;
  });
}

describe('background responses and resumable streams through the openai npm package', () => {
  before(async () => {
    gg = await startGrokgate();
    keyB = (await createKey(gg, { name: 'other user' })).key;
  });
  after(async () => {
    if (!gg) return;
    const { code, signal } = await gg.stop();
    assert.equal(code, 0, `grokgate did not stop cleanly on SIGTERM (code ${code}, signal ${signal}):\n${gg.logTail()}`);
  });

  it('background: true answers at once; responses.retrieve follows it to completed', async () => {
    const input = 'Tell me about gateways. #sim{"chunks":12,"delay_ms":20}';
    const r = await client().responses.create({ model: 'grok-4.3', input, background: true });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'in_progress');
    assert.equal(r.background, true);
    let got = r;
    const deadline = Date.now() + 10_000;
    while (got.status === 'in_progress' && Date.now() < deadline) {
      await sleep(50);
      got = await client().responses.retrieve(r.id);
    }
    assert.equal(got.status, 'completed');
    assert.equal(got.id, r.id);
    const plain = await client().responses.create({ model: 'grok-4.3', input });
    assert.equal(got.output_text, plain.output_text);
    assert.equal(got.usage.output_tokens, 12);
    await assert.rejects(() => client(keyB).responses.retrieve(r.id), OpenAI.NotFoundError);
  });

  it('responses.retrieve with stream and starting_after replays the rest of a dropped stream', async () => {
    const input = 'Count slowly. #sim{"chunks":15,"delay_ms":20}';
    const stream = await client().responses.create({ model: 'grok-4.3', input, stream: true, background: true });
    const seen = [];
    for await (const ev of stream) {
      seen.push(ev);
      if (seen.length === 5) break; // drops the connection
    }
    const id = seen[0].response.id;
    const rest = await client().responses.retrieve(id, { stream: true, starting_after: seen.at(-1).sequence_number });
    for await (const ev of rest) seen.push(ev);
    assert.deepEqual(seen.map((e) => e.sequence_number), seen.map((_, i) => i), 'every event once, in order');
    assert.equal(seen.at(-1).type, 'response.completed');
    const text = seen.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
    assert.equal(text, seen.at(-1).response.output.find((o) => o.type === 'message').content[0].text);
  });

  it('responses.cancel stops a background response', async () => {
    const r = await client().responses.create({
      model: 'grok-4.3', input: 'Go on and on. #sim{"chunks":2000,"delay_ms":20}', background: true,
    });
    await assert.rejects(() => client(keyB).responses.cancel(r.id), OpenAI.NotFoundError);
    const cancelled = await client().responses.cancel(r.id);
    assert.equal(cancelled.id, r.id);
    assert.equal(cancelled.status, 'cancelled');
    assert.equal((await client().responses.retrieve(r.id)).status, 'cancelled');
  });

  it('a resumable chat stream is picked up with Last-Event-ID', async () => {
    const body = { model: 'grok-4.3', stream: true, messages: [{ role: 'user', content: 'A story. #sim{"chunks":20,"delay_ms":15}' }] };
    const whole = await client().chat.completions.create(body);
    let want = '';
    for await (const c of whole) want += c.choices[0]?.delta?.content ?? '';

    const { data: stream, response } = await client().chat.completions
      .create(body, { headers: { 'X-Grokgate-Resumable': 'true' } })
      .withResponse();
    const streamID = response.headers.get('x-grokgate-stream-id');
    assert.ok(streamID);
    let text = '';
    let n = 0;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      if (++n === 4) break; // drops the connection after event 4
    }
    const res = await fetch(`${gg.baseURL}/chat/completions/${streamID}/stream`, {
      headers: { authorization: `Bearer ${gg.adminKey}`, 'last-event-id': String(n) },
    });
    assert.equal(res.status, 200);
    const events = await sseEvents(res);
    assert.equal(events[0].id, String(n + 1));
    assert.equal(events.at(-1).data, '[DONE]');
    for (const ev of events.slice(0, -1)) text += JSON.parse(ev.data).choices[0]?.delta?.content ?? '';
    assert.equal(text, want);

    const other = await fetch(`${gg.baseURL}/chat/completions/${streamID}/stream`, { headers: { authorization: `Bearer ${keyB}` } });
    assert.equal(other.status, 404);
  });
});
