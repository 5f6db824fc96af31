// End-to-end: xAI's Responses API through grokgate with the openai npm
// package, unmodified: create (streamed and not), retrieve, delete, compact,
// a continued conversation, function and server-side tools, a stream that
// fails after it began, the ownership of stored responses between keys, the
// tool policy and the ledger. The simulator is steered with #sim{...} in the
// last user input (see simulator/doc.go).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';

import { createKey, usageOfKey } from './admin.js';
import { startGrokgate } from './grokgate.js';

let gg;
let keyB; // a second user key, for ownership

function client(apiKey = gg.adminKey) {
  return new OpenAI({ baseURL: gg.baseURL, apiKey, maxRetries: 0, timeout: 10_000 });
}

// Reads a whole stream: its events and the text its deltas spell.
async function collect(stream) {
  const events = [];
  let text = '';
  for await (const ev of stream) {
    events.push(ev);
    if (ev.type === 'response.output_text.delta') text += ev.delta;
  }
  return { events, text };
}

// Runs fn, which must throw the SDK's error of class cls; returns it.
async function rejection(fn, cls) {
  let caught;
  await assert.rejects(fn, (err) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err}`);
    caught = err;
    return true;
  });
  return caught;
}

const weatherTool = {
  type: 'function',
  name: 'get_weather',
  description: 'The current weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

describe('the Responses API through the openai npm package', () => {
  before(async () => {
    gg = await startGrokgate();
    keyB = (await createKey(gg, { name: 'other user' })).key;
  });
  after(async () => {
    if (!gg) return;
    const { code, signal } = await gg.stop();
    assert.equal(code, 0, `grokgate did not stop cleanly on SIGTERM (code ${code}, signal ${signal}):\n${gg.logTail()}`);
  });

  it('responses.create answers, not streamed', async () => {
    const r = await client().responses.create({ model: 'grok-4.3', input: 'Say something short. #sim{"chunks":4}' });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.equal(r.model, 'grok-4.3');
    assert.ok(r.id);
    const message = r.output.find((o) => o.type === 'message');
    assert.equal(message.role, 'assistant');
    assert.equal(message.content[0].type, 'output_text');
    assert.equal(r.output_text, message.content[0].text);
    assert.equal(r.output_text.split(' ').length, 4);
    assert.ok(r.usage.input_tokens > 0);
    assert.equal(r.usage.output_tokens, 4);
    assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
  });

  for (const [how, extra] of [['data lines only', ''], ['with event: lines', ',"event_lines":true']]) {
    it(`responses.create streams the same answer, ending with response.completed and its usage (${how})`, async () => {
      const input = `Tell me about gateways. #sim{"chunks":5${extra}}`;
      const plain = await client().responses.create({ model: 'grok-4.3', input });
      const stream = await client().responses.create({ model: 'grok-4.3', input, stream: true });
      const { events, text } = await collect(stream);

      assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i), 'sequence numbers 0.. without gaps');
      assert.equal(events[0].type, 'response.created');
      assert.equal(events.filter((e) => e.type === 'response.output_text.delta').length, 5);
      const last = events.at(-1);
      assert.equal(last.type, 'response.completed');
      assert.equal(last.response.status, 'completed');
      assert.equal(last.response.id, events[0].response.id);
      assert.equal(text, plain.output_text);
      const u = last.response.usage;
      assert.equal(u.output_tokens, 5);
      assert.equal(u.input_tokens, plain.usage.input_tokens);
      assert.equal(u.total_tokens, u.input_tokens + u.output_tokens);
    });
  }

  it('responses.stream() accumulates the final response', async () => {
    const stream = client().responses.stream({ model: 'grok-4.20-0309-reasoning', input: 'Think, then answer. #sim{"chunks":3}' });
    const final = await stream.finalResponse();
    assert.equal(final.status, 'completed');
    assert.deepEqual(final.output.map((o) => o.type), ['reasoning', 'message']);
    assert.equal(final.output_text.split(' ').length, 3);
    assert.ok(final.usage.output_tokens_details.reasoning_tokens > 0, 'a reasoning model reports reasoning tokens');
    assert.equal(final.usage.output_tokens, 3 + final.usage.output_tokens_details.reasoning_tokens);
  });

  it('responses.retrieve returns the stored response; responses.delete removes it', async () => {
    const created = await client().responses.create({ model: 'grok-4.3', input: 'Remember this.' });
    const got = await client().responses.retrieve(created.id);
    assert.equal(got.id, created.id);
    assert.equal(got.output_text, created.output_text);
    assert.deepEqual(got.usage, created.usage);

    const deleted = await client().responses.delete(created.id);
    assert.deepEqual(deleted, { id: created.id, object: 'response', deleted: true });
    const err = await rejection(() => client().responses.retrieve(created.id), OpenAI.NotFoundError);
    assert.equal(err.code, 'response_not_found');
    await rejection(() => client().responses.delete(created.id), OpenAI.NotFoundError);
  });

  it('continues a conversation with previous_response_id, streamed and not', async () => {
    const first = await client().responses.create({ model: 'grok-4.3', input: 'My name is Ada.' });
    assert.ok(!first.output_text.startsWith('(turn'), first.output_text);
    const second = await client().responses.create({ model: 'grok-4.3', input: 'What is my name?', previous_response_id: first.id });
    assert.equal(second.previous_response_id, first.id);
    assert.match(second.output_text, /^\(turn 2\) /);
    // The earlier turn's input and output count as input.
    assert.ok(second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens, JSON.stringify(second.usage));

    const stream = await client().responses.create({
      model: 'grok-4.3', input: 'And again?', previous_response_id: second.id, stream: true,
    });
    const { events, text } = await collect(stream);
    assert.equal(events.at(-1).type, 'response.completed');
    assert.match(text, /^\(turn 3\) /);
  });

  it('function tools: a function_call item, then text for its function_call_output', async () => {
    const first = await client().responses.create({
      model: 'grok-4.3',
      tools: [weatherTool],
      input: 'What is the weather in Paris? #sim{"tool_call":"get_weather","arguments":{"city":"Paris"}}',
    });
    const calls = first.output.filter((o) => o.type === 'function_call');
    assert.equal(calls.length, 1, JSON.stringify(first.output));
    assert.equal(calls[0].name, 'get_weather');
    assert.deepEqual(JSON.parse(calls[0].arguments), { city: 'Paris' });
    assert.ok(calls[0].call_id);
    assert.equal(first.output_text, '');

    const answer = await client().responses.create({
      model: 'grok-4.3',
      tools: [weatherTool],
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: calls[0].call_id, output: JSON.stringify({ celsius: 21 }) }],
    });
    assert.equal(answer.status, 'completed');
    assert.ok(answer.output_text.length > 0);
    assert.ok(!answer.output.some((o) => o.type === 'function_call'), 'answered with another call');
  });

  it('function tools streamed: the arguments arrive in deltas and the SDK accumulates the call', async () => {
    const stream = client().responses.stream({
      model: 'grok-4.3',
      tools: [weatherTool],
      input: 'Weather? #sim{"tool_call":"get_weather","arguments":{"city":"Paris"}}',
    });
    let args = '';
    stream.on('response.function_call_arguments.delta', (ev) => { args += ev.delta; });
    const final = await stream.finalResponse();
    const call = final.output.find((o) => o.type === 'function_call');
    assert.equal(call.name, 'get_weather');
    assert.deepEqual(JSON.parse(args), { city: 'Paris' });
    assert.equal(call.arguments, args);
  });

  it('a server-side tool (web_search) is answered with its call item and metered', async () => {
    const plain = await client().responses.create({ model: 'grok-4.3', input: 'News about gateways. #sim{"chunks":2}' });
    const r = await client().responses.create({
      model: 'grok-4.3', tools: [{ type: 'web_search' }], input: 'News about gateways. #sim{"chunks":2}',
    });
    assert.deepEqual(r.output.map((o) => o.type), ['web_search_call', 'message']);
    assert.equal(r.output[0].status, 'completed');
    assert.equal(r.output[1].content[0].annotations[0].type, 'url_citation');
    // xAI's own usage fields come through the SDK as sent.
    assert.equal(r.usage.num_server_side_tools_used, 1);
    assert.equal(r.usage.server_side_tool_usage_details.web_search_calls, 1);
    assert.ok(r.usage.cost_in_usd_ticks > plain.usage.cost_in_usd_ticks, 'the tool fee is in the cost');
  });

  for (const [how, directive, message, code] of [
    ['an error event from xAI', '"error_after":2', 'API error: Simulated error after 2 chunks', 'Internal error'],
    ['an error event from xAI, with event: lines', '"error_after":2,"event_lines":true', 'API error: Simulated error after 2 chunks', 'Internal error'],
    ['a stream cut before its terminal event', '"cut_after":2', 'API error: the upstream stream ended unexpectedly before it was complete', 'stream_interrupted'],
  ]) {
    it(`a mid-stream failure is raised as an APIError carrying "API error: ..." (${how})`, async () => {
      const stream = await client().responses.create({
        model: 'grok-4.3', stream: true, input: `Start, then fail. #sim{${directive}}`,
      });
      const events = [];
      const err = await rejection(async () => { for await (const ev of stream) events.push(ev); }, OpenAI.APIError);
      assert.equal(err.message, message);
      assert.equal(err.type, 'upstream_error');
      assert.equal(err.code, code);
      assert.equal(err.status, undefined, 'raised from the stream, not from an HTTP status');
      assert.equal(events.filter((e) => e.type === 'response.output_text.delta').length, 2);
      assert.ok(!events.some((e) => e.type === 'response.completed'));
    });
  }

  it('responses.stream() rejects finalResponse with the same error', async () => {
    const stream = client().responses.stream({ model: 'grok-4.3', input: 'Start, then fail. #sim{"error_after":2}' });
    const err = await rejection(() => stream.finalResponse(), OpenAI.APIError);
    assert.equal(err.message, 'API error: Simulated error after 2 chunks');
  });

  it('response.failed reaches the client as xAI sent it', async () => {
    const stream = await client().responses.create({ model: 'grok-4.3', stream: true, input: 'Fail politely. #sim{"failed_after":2}' });
    const { events } = await collect(stream);
    const last = events.at(-1);
    assert.equal(last.type, 'response.failed');
    assert.equal(last.response.status, 'failed');
    assert.equal(last.response.error.code, 'server_error');
  });

  it('/v1 serves the same API, and responses.compact gives an item its key can send back', async () => {
    const v1 = new OpenAI({ baseURL: `${gg.origin}/v1`, apiKey: gg.adminKey, maxRetries: 0, timeout: 10_000 });
    const first = await v1.responses.create({ model: 'grok-4.3', input: 'My name is Ada.' });
    assert.equal((await v1.responses.retrieve(first.id)).output_text, first.output_text);
    const compacted = await v1.responses.compact({ model: 'grok-4.3', previous_response_id: first.id, input: 'Keep the gist.' });
    assert.equal(compacted.object, 'response.compaction');
    assert.deepEqual(compacted.output.map((o) => o.type), ['compaction']);
    assert.ok(compacted.usage.output_tokens > 0);
    const input = [...compacted.output, { role: 'user', content: 'What is my name?' }];
    const next = await v1.responses.create({ model: 'grok-4.3', input });
    assert.equal(next.status, 'completed');
    assert.ok(next.output_text.length > 0);
    const err = await rejection(() => client(keyB).responses.create({ model: 'grok-4.3', input }), OpenAI.NotFoundError);
    assert.equal(err.code, 'response_not_found');
  });

  // What another key gets for a response it does not own, next to what it
  // gets for an id that never existed: the same error, the id aside.
  function sameAsUnknown(err, unknownErr, id, unknownId) {
    assert.equal(err.status, 404);
    assert.equal(err.status, unknownErr.status);
    assert.deepEqual(
      JSON.parse(JSON.stringify(err.error).replaceAll(id, 'ID')),
      JSON.parse(JSON.stringify(unknownErr.error).replaceAll(unknownId, 'ID')),
    );
    assert.equal(err.message.replaceAll(id, 'ID'), unknownErr.message.replaceAll(unknownId, 'ID'));
  }

  it("another key's retrieve, delete and previous_response_id get NotFoundError, as for an unknown id", async () => {
    const owned = await client().responses.create({ model: 'grok-4.3', input: 'Private conversation.' });
    const unknown = randomUUID();
    const b = client(keyB);
    const byKey = { retrieve: (id) => b.responses.retrieve(id), delete: (id) => b.responses.delete(id) };
    for (const stream of [false, true]) {
      byKey[`previous_response_id (stream: ${stream})`] = (id) =>
        b.responses.create({ model: 'grok-4.3', input: 'Go on.', previous_response_id: id, stream });
    }
    for (const [what, call] of Object.entries(byKey)) {
      const err = await rejection(() => call(owned.id), OpenAI.NotFoundError);
      const unknownErr = await rejection(() => call(unknown), OpenAI.NotFoundError);
      assert.equal(err.code, 'response_not_found', what);
      sameAsUnknown(err, unknownErr, owned.id, unknown);
    }
    // None of it touched the owner's response.
    const still = await client().responses.retrieve(owned.id);
    assert.equal(still.output_text, owned.output_text);
    const next = await client().responses.create({ model: 'grok-4.3', input: 'Go on.', previous_response_id: owned.id });
    assert.match(next.output_text, /^\(turn 2\) /);
  });

  it('the owner of a response is the key that created it, whichever key', async () => {
    const mine = await client(keyB).responses.create({ model: 'grok-4.3', input: 'Mine.', stream: true });
    const { events } = await collect(mine);
    const id = events.at(-1).response.id;
    assert.equal((await client(keyB).responses.retrieve(id)).id, id);
    await rejection(() => client().responses.retrieve(id), OpenAI.NotFoundError);
  });

  it('a key limited to some server-side tools gets PermissionDeniedError (403 tool_not_allowed) for another', async () => {
    const limited = await createKey(gg, { name: 'x search only', allowed_tools: ['x_search'] });
    const c = client(limited.key);
    const err = await rejection(
      () => c.responses.create({ model: 'grok-4.3', input: 'Search.', tools: [{ type: 'web_search' }] }),
      OpenAI.PermissionDeniedError,
    );
    assert.equal(err.status, 403);
    assert.equal(err.code, 'tool_not_allowed');
    assert.equal(err.param, 'tools');
    assert.match(err.message, /web_search/);
    assert.match(err.message, /x_search/);
    const ok = await c.responses.create({ model: 'grok-4.3', input: 'Search.', tools: [{ type: 'x_search' }] });
    assert.equal(ok.output[0].type, 'x_search_call');
    // Function tools run in the client: the policy does not cover them.
    await c.responses.create({ model: 'grok-4.3', input: 'Weather?', tools: [weatherTool] });
  });

  it('models.retrieve answers for a model the key may use, NotFoundError for one it may not', async () => {
    const m = await client().models.retrieve('grok-4.3');
    assert.equal(m.id, 'grok-4.3');
    assert.equal(m.object, 'model');
    const limited = await createKey(gg, { name: 'grok-3 only', allowed_models: ['grok-3'] });
    assert.equal((await client(limited.key).models.retrieve('grok-3')).id, 'grok-3');
    await rejection(() => client(limited.key).models.retrieve('grok-4.3'), OpenAI.NotFoundError);
  });

  it('the ledger holds one record per request with the usage the SDK saw', async () => {
    const k = await createKey(gg, { name: 'ledger' });
    const c = client(k.key);
    const plain = await c.responses.create({ model: 'grok-4.3', input: 'One. #sim{"chunks":3}' });
    const { events } = await collect(await c.responses.create({
      model: 'grok-4.20-0309-reasoning', input: 'Two. #sim{"chunks":4}', stream: true,
    }));
    const streamed = events.at(-1).response;
    const searched = await c.responses.create({ model: 'grok-4.3', input: 'Three.', tools: [{ type: 'web_search' }] });
    await c.responses.retrieve(plain.id); // metered, never billed

    const usages = [plain.usage, streamed.usage, searched.usage];
    const sum = (f) => usages.reduce((n, u) => n + f(u), 0);
    const row = await usageOfKey(gg, k.id, 4);
    assert.ok(row, 'no usage for the key');
    assert.equal(row.requests, 4);
    assert.equal(row.estimated_requests, 0);
    assert.equal(row.prompt_tokens, sum((u) => u.input_tokens));
    assert.ok(streamed.usage.output_tokens_details.reasoning_tokens > 0);
    assert.equal(row.reasoning_tokens, sum((u) => u.output_tokens_details.reasoning_tokens));
    // The ledger keeps reasoning apart; xAI's output_tokens includes it.
    assert.equal(row.completion_tokens + row.reasoning_tokens, sum((u) => u.output_tokens));
    assert.equal(row.total_tokens, sum((u) => u.total_tokens));
    assert.equal(row.cost_in_usd_ticks, sum((u) => u.cost_in_usd_ticks));
    assert.equal(row.tool_calls, 1);
    assert.equal(row.tool_call_details.web_search_calls, 1);
  });
});
