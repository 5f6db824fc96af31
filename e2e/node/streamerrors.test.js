// End-to-end: what a user sees when a stream fails after it began, in each
// GROKGATE_STREAM_ERROR_FORMAT, through openai-node and the AI SDK's
// providers. These are the cases of the table in the docs. On /responses the
// format does not apply: there is one error event, the Responses one.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { streamText } from 'ai';
import OpenAI from 'openai';

import { chatModels, responsesProvider } from './aisdk.js';
import { startGrokgate } from './grokgate.js';

const formats = ['string', 'openai'];
const servers = {}; // format -> running grokgate
const failing = 'Start, then fail. #sim{"error_after":2}';
const shown = 'API error: Simulated error after 2 chunks';

describe('mid-stream errors as the SDKs show them', () => {
  before(async () => {
    const started = await Promise.all(formats.map((f) => startGrokgate(['--stream-error-format', f])));
    formats.forEach((f, i) => { servers[f] = started[i]; });
  });
  after(async () => {
    await Promise.all(Object.values(servers).map((gg) => gg.stop()));
  });

  for (const format of formats) {
    it(`openai-node raises an APIError carrying the message (${format})`, async () => {
      const gg = servers[format];
      const client = new OpenAI({ baseURL: gg.baseURL, apiKey: gg.adminKey, maxRetries: 0, timeout: 10_000 });
      const stream = await client.chat.completions.create({
        model: 'grok-4.3', stream: true, messages: [{ role: 'user', content: failing }],
      });
      let chunks = 0;
      await assert.rejects(
        async () => { for await (const _ of stream) chunks++; },
        (err) => {
          assert.ok(err instanceof OpenAI.APIError, `expected an APIError, got ${err?.constructor?.name}`);
          // The string form is shown JSON-quoted; the object form as is.
          assert.equal(err.message, format === 'string' ? JSON.stringify(shown) : shown);
          if (format === 'openai') assert.deepEqual({ type: err.type, code: err.code }, { type: 'upstream_error', code: 'Internal error' });
          return true;
        },
      );
      assert.equal(chunks, 2);
    });

    for (const [i, provider] of ['@ai-sdk/openai-compatible', '@ai-sdk/xai (chat)'].entries()) {
      it(`AI SDK with ${provider}: an error part with the message; the partial text still resolves (${format})`, async () => {
        const [name, model] = chatModels(servers[format])[i];
        assert.equal(name, provider);
        const errors = [];
        const result = streamText({ model, prompt: failing, maxRetries: 0, onError: ({ error }) => errors.push(error) });
        const parts = [];
        for await (const part of result.fullStream) parts.push(part);
        const errorParts = parts.filter((p) => p.type === 'error');
        assert.equal(errorParts.length, 1, `error parts: ${JSON.stringify(parts.map((p) => p.type))}`);
        assert.deepEqual(errors, [errorParts[0].error]);
        const err = errorParts[0].error;
        if (format === 'openai' && provider === '@ai-sdk/openai-compatible') {
          // Its chunk schema knows the OpenAI error object: the message as is.
          assert.equal(err.message, shown);
        } else {
          // A string, or a chunk schema without an error object (xai's chat
          // provider): a schema error that quotes the event.
          assert.match(err.name, /TypeValidationError/);
          assert.ok(err.message.includes(shown), err.message);
        }
        // The AI SDK does not throw from text: it resolves with what came.
        assert.equal((await result.text).split(' ').length, 2);
      });
    }

    it(`/responses: openai-node raises an APIError carrying the message; the AI SDK's xai(model) an error part (${format})`, async () => {
      const gg = servers[format];
      const client = new OpenAI({ baseURL: gg.baseURL, apiKey: gg.adminKey, maxRetries: 0, timeout: 10_000 });
      const stream = await client.responses.create({ model: 'grok-4.3', stream: true, input: failing });
      await assert.rejects(
        async () => { for await (const _ of stream) ; },
        (err) => {
          assert.ok(err instanceof OpenAI.APIError, `expected an APIError, got ${err?.constructor?.name}`);
          assert.equal(err.message, shown);
          assert.deepEqual({ type: err.type, code: err.code }, { type: 'upstream_error', code: 'Internal error' });
          return true;
        },
      );
      const result = streamText({ model: responsesProvider(gg)('grok-4.3'), prompt: failing, maxRetries: 0, onError: () => {} });
      const errorParts = [];
      for await (const part of result.fullStream) if (part.type === 'error') errorParts.push(part.error);
      assert.deepEqual(errorParts.map((e) => [e.name, e.message]), [['AI_StreamProviderError', shown]]);
    });
  }
});
