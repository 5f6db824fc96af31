// End-to-end: the Vercel AI SDK with the latest @ai-sdk/xai, whose
// xai(model) speaks only the Responses API, through grokgate: generateText
// and streamText, a continued conversation, a server-side tool and a stream
// that fails after it began (its function tools: tools.test.js). openai-node
// reads back what the AI SDK stored.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateText, streamText } from 'ai';
import OpenAI from 'openai';

import { responsesProvider } from './aisdk.js';
import { startGrokgate } from './grokgate.js';

let gg;
let xai;

function client() {
  return new OpenAI({ baseURL: gg.baseURL, apiKey: gg.adminKey, maxRetries: 0, timeout: 10_000 });
}

describe('@ai-sdk/xai xai(model) through grokgate', () => {
  before(async () => {
    gg = await startGrokgate();
    xai = responsesProvider(gg);
  });
  after(async () => {
    if (gg) await gg.stop();
  });

  it('generateText answers with usage, and the response it stored is readable', async () => {
    const result = await generateText({ model: xai('grok-4.3'), maxRetries: 0, prompt: 'Say something short. #sim{"chunks":4}' });
    assert.equal(result.text.split(' ').length, 4);
    assert.equal(result.finishReason, 'stop');
    assert.ok(result.usage.inputTokens > 0);
    assert.equal(result.usage.outputTokens, 4);
    assert.equal(result.usage.totalTokens, result.usage.inputTokens + 4);
    assert.ok(result.providerMetadata.xai.costInUsdTicks > 0, JSON.stringify(result.providerMetadata));

    const stored = await client().responses.retrieve(result.response.id);
    assert.equal(stored.output_text, result.text);
  });

  for (const model of ['grok-4.3', 'grok-4.20-0309-reasoning']) {
    it(`streamText: the text grows in parts and usage is reported (${model})`, async () => {
      const prompt = 'Tell me about gateways. #sim{"chunks":5}';
      const whole = await generateText({ model: xai(model), maxRetries: 0, prompt });
      const result = streamText({ model: xai(model), maxRetries: 0, prompt });
      const parts = [];
      for await (const t of result.textStream) parts.push(t);
      assert.equal(parts.length, 5, JSON.stringify(parts));
      assert.equal(parts.join(''), whole.text);
      assert.equal(await result.text, whole.text);
      assert.equal(await result.finishReason, 'stop');
      const u = await result.usage;
      assert.equal(u.inputTokens, whole.usage.inputTokens);
      assert.equal(u.outputTokens, whole.usage.outputTokens);
      const reasoning = u.outputTokenDetails?.reasoningTokens ?? u.reasoningTokens ?? 0;
      if (model.includes('-reasoning')) {
        assert.ok(reasoning > 0, `reasoning tokens: ${JSON.stringify(u)}`);
        assert.ok((await result.reasoningText)?.length > 0, 'no reasoning text');
      }
      assert.equal(u.totalTokens, u.inputTokens + u.outputTokens);
    });
  }

  it('continues a conversation with providerOptions.xai.previousResponseId', async () => {
    const first = await generateText({ model: xai('grok-4.3'), maxRetries: 0, prompt: 'My name is Ada.' });
    const second = streamText({
      model: xai('grok-4.3'), maxRetries: 0, prompt: 'What is my name?',
      providerOptions: { xai: { previousResponseId: first.response.id } },
    });
    assert.match(await second.text, /^\(turn 2\) /);
  });

  it("a server-side tool (xai.tools.webSearch) is answered, with xAI's sources", async () => {
    const result = await generateText({
      model: xai('grok-4.3'), maxRetries: 0, prompt: 'News about gateways.',
      tools: { web_search: xai.tools.webSearch() },
    });
    assert.ok(result.text.length > 0);
    assert.ok(result.sources.some((s) => s.url === 'https://sources.sim.invalid/web_search/1'), JSON.stringify(result.sources));
  });

  for (const [how, directive, message, code, finish] of [
    ['an error event from xAI', '"error_after":2', 'API error: Simulated error after 2 chunks', 'Internal error', 'other'],
    ['a stream cut before its terminal event', '"cut_after":2',
      'API error: the upstream stream ended unexpectedly before it was complete', 'stream_interrupted', 'other'],
    // xAI's own response.failed is relayed as sent: its message, unprefixed.
    ['response.failed from xAI', '"failed_after":2', 'Simulated failure after 2 chunks', 'server_error', 'error'],
  ]) {
    it(`streamText: a mid-stream failure is an error part with its message; the partial text resolves (${how})`, async () => {
      const errors = [];
      const result = streamText({
        model: xai('grok-4.3'), maxRetries: 0, prompt: `Start, then fail. #sim{${directive}}`,
        onError: ({ error }) => errors.push(error),
      });
      const parts = [];
      for await (const part of result.fullStream) parts.push(part);
      const errorParts = parts.filter((p) => p.type === 'error');
      assert.equal(errorParts.length, 1, `parts: ${JSON.stringify(parts.map((p) => p.type))}`);
      assert.deepEqual(errors, [errorParts[0].error]);
      // The provider reads the Responses error event itself: the message as is.
      const err = errorParts[0].error;
      assert.equal(err.name, 'AI_StreamProviderError');
      assert.equal(err.message, message);
      assert.equal(err.code, code);
      assert.equal(parts.filter((p) => p.type === 'text-delta').length, 2);
      // The AI SDK does not throw from text: it resolves with what came.
      assert.equal((await result.text).split(' ').length, 2);
      assert.equal(await result.finishReason, finish);
    });
  }

  it('generateText: a failure before the first byte throws the APICallError with grokgate\'s message', async () => {
    await assert.rejects(
      generateText({ model: xai('grok-4.3'), maxRetries: 0, prompt: 'Fail at once. #sim{"status":503}' }),
      (err) => {
        assert.equal(err.statusCode, 503, `${err?.constructor?.name}: ${err}`);
        assert.match(err.message, /Simulated upstream error \(status 503\)/);
        return true;
      },
    );
  });
});
