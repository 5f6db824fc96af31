// End-to-end: the official openai npm package talking to a real grokgate
// process, which answers from its built-in xAI simulator. Every case is a real
// HTTP call through grokgate; the simulator is steered with #sim{...}
// directives in the last user message (see simulator/doc.go).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';

import { startGrokgate } from './grokgate.js';

const REQUEST_TIMEOUT_MS = 10_000;

let gg; // the running grokgate (see grokgate.js)

function client(apiKey = gg.adminKey) {
  // No retries anywhere: every assertion is about exactly one request.
  return new OpenAI({ baseURL: gg.baseURL, apiKey, maxRetries: 0, timeout: REQUEST_TIMEOUT_MS });
}

function user(text) {
  return [{ role: 'user', content: text }];
}

async function simStats() {
  const res = await fetch(`${gg.simulatorURL}/sim/stats`);
  assert.equal(res.status, 200);
  return res.json();
}

// Reads a whole stream, returning its chunks and the content it spells.
async function collect(stream) {
  const chunks = [];
  let content = '';
  for await (const chunk of stream) {
    chunks.push(chunk);
    content += chunk.choices[0]?.delta?.content ?? '';
  }
  return { chunks, content };
}

describe('grokgate through the openai npm package', () => {
  before(async () => {
    gg = await startGrokgate();
  });

  after(async () => {
    if (!gg) return;
    const { code, signal } = await gg.stop();
    assert.equal(code, 0, `grokgate did not stop cleanly on SIGTERM (code ${code}, signal ${signal}):\n${gg.logTail()}`);
  });

  it('prints a well-formed admin key and URLs', () => {
    assert.match(gg.adminKey, /^gg-[A-Za-z0-9_-]{43}$/);
    assert.match(gg.baseURL, /^http:\/\/127\.0\.0\.1:\d+\/api\/v1$/);
    assert.match(gg.simulatorURL, /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('answers a non-streaming chat completion', async () => {
    const completion = await client().chat.completions.create({
      model: 'grok-4.3',
      messages: user('Say something short.'),
    });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.model, 'grok-4.3');
    assert.equal(completion.choices.length, 1);
    const choice = completion.choices[0];
    assert.equal(choice.message.role, 'assistant');
    assert.equal(typeof choice.message.content, 'string');
    assert.ok(choice.message.content.length > 0, 'content is empty');
    assert.equal(choice.finish_reason, 'stop');
  });

  it('resolves the retired alias grok-4-1-fast-non-reasoning to grok-4.3', async () => {
    const completion = await client().chat.completions.create({
      model: 'grok-4-1-fast-non-reasoning',
      messages: user('Say something short.'),
    });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.model, 'grok-4.3');
    assert.ok(completion.choices[0].message.content.length > 0, 'content is empty');
  });

  it('streams the same content as the non-streaming answer', async () => {
    const messages = user('Tell me about gateways. #sim{"chunks":5}');
    const plain = await client().chat.completions.create({ model: 'grok-4.3', messages });
    const stream = await client().chat.completions.create({ model: 'grok-4.3', messages, stream: true });
    const { chunks, content } = await collect(stream);

    assert.ok(chunks.length > 0, 'no chunks');
    for (const c of chunks) {
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.model, 'grok-4.3');
    }
    assert.equal(content, plain.choices[0].message.content);

    const withChoices = chunks.filter((c) => c.choices.length > 0);
    assert.equal(withChoices[0].choices[0].delta.role, 'assistant', 'first delta lacks role assistant');
    assert.equal(withChoices.at(-1).choices[0].finish_reason, 'stop', 'last choice chunk is not finish_reason stop');
    assert.equal(withChoices.filter((c) => c.choices[0].delta?.content).length, 5, 'expected 5 content chunks');
    assert.ok(chunks.every((c) => !c.usage), 'usage chunk sent without include_usage');
  });

  for (const model of ['grok-4.3', 'grok-4.20-0309-reasoning']) {
    it(`ends the stream with a usage chunk when include_usage is set (${model})`, async () => {
      const messages = user('Count for me. #sim{"chunks":4}');
      const stream = await client().chat.completions.create({
        model,
        messages,
        stream: true,
        stream_options: { include_usage: true },
      });
      const { chunks, content } = await collect(stream);

      const last = chunks.at(-1);
      assert.deepEqual(last.choices, [], 'the usage chunk should have no choices');
      const usage = last.usage;
      assert.ok(usage, 'the last chunk carries no usage');
      assert.ok(chunks.slice(0, -1).every((c) => !c.usage), 'usage before the final chunk');

      const reasoning = usage.completion_tokens_details?.reasoning_tokens ?? 0;
      assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens + reasoning);
      assert.ok(usage.prompt_tokens > 0);
      assert.equal(usage.completion_tokens, 4);

      const choiceChunks = chunks.filter((c) => c.choices.length > 0);
      assert.equal(choiceChunks[0].choices[0].delta.role, 'assistant');
      assert.equal(choiceChunks.at(-1).choices[0].finish_reason, 'stop');
      const reasoningDeltas = choiceChunks.filter((c) => c.choices[0].delta?.reasoning_content).length;
      assert.equal(reasoning, reasoningDeltas, 'reasoning_tokens should count the reasoning deltas');
      if (model.includes('-reasoning')) assert.ok(reasoning > 0, 'a reasoning model should report reasoning tokens');

      const plain = await client().chat.completions.create({ model, messages });
      assert.equal(content, plain.choices[0].message.content);
      assert.equal(usage.prompt_tokens, plain.usage.prompt_tokens);
      assert.equal(usage.total_tokens, plain.usage.total_tokens);
    });
  }

  it('throws an APIError from the stream on a mid-stream upstream error', async () => {
    const stream = await client().chat.completions.create({
      model: 'grok-4.3',
      messages: user('Start, then fail. #sim{"error_after":3}'),
      stream: true,
    });
    let contentChunks = 0;
    await assert.rejects(
      async () => {
        for await (const chunk of stream) {
          if (chunk.choices[0]?.delta?.content) contentChunks++;
        }
      },
      (err) => {
        assert.ok(err instanceof OpenAI.APIError, `expected an APIError, got ${err?.constructor?.name}: ${err}`);
        assert.match(err.message, /Simulated error after 3 chunks/);
        return true;
      },
    );
    assert.equal(contentChunks, 3, 'content chunks received before the error');
  });

  for (const [name, badKey] of [
    ['a well-formed unknown key', 'gg-' + 'x'.repeat(43)],
    ['a totally wrong key', 'not-a-grokgate-key'],
  ]) {
    it(`rejects ${name} with AuthenticationError (401) without calling xAI`, async () => {
      const before = await simStats();
      await assert.rejects(
        client(badKey).chat.completions.create({ model: 'grok-4.3', messages: user('Hello?') }),
        (err) => {
          assert.ok(err instanceof OpenAI.AuthenticationError, `expected AuthenticationError, got ${err?.constructor?.name}: ${err}`);
          assert.equal(err.status, 401);
          return true;
        },
      );
      const afterStats = await simStats();
      assert.equal(afterStats.requests, before.requests, 'a request with a bad key reached the upstream');
    });
  }

  for (const stream of [false, true]) {
    it(`passes an upstream 503 through as an APIError of status 503 (stream: ${stream})`, async () => {
      await assert.rejects(
        client().chat.completions.create({
          model: 'grok-4.3',
          messages: user('Fail at once. #sim{"status":503}'),
          stream,
        }),
        (err) => {
          assert.ok(err instanceof OpenAI.APIError, `expected an APIError, got ${err?.constructor?.name}: ${err}`);
          assert.equal(err.status, 503);
          assert.match(err.message, /Simulated upstream error \(status 503\)/);
          return true;
        },
      );
    });
  }
});
