// End-to-end: a full tool round trip through grokgate, with openai-node
// (streamed and not) and with the AI SDK's tools, on chat completions and
// (xai(model)) on the Responses API. The simulator answers a
// tool call when the request offers tools and the user's message asks for
// one (#sim{"tool_call":...}), and text to the follow-up carrying the result.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateText, stepCountIs, streamText, tool } from 'ai';
import OpenAI from 'openai';
import { z } from 'zod';

import { chatModels, responsesProvider } from './aisdk.js';
import { startGrokgate } from './grokgate.js';

let gg;

const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];

function ask(extra = '') {
  return `What is the weather in Paris? #sim{"tool_call":"get_weather","arguments":{"city":"Paris"}${extra}}`;
}

describe('tool calls through grokgate', () => {
  before(async () => { gg = await startGrokgate(); });
  after(async () => { await gg.stop(); });

  function client() {
    return new OpenAI({ baseURL: gg.baseURL, apiKey: gg.adminKey, maxRetries: 0, timeout: 10_000 });
  }

  // Sends the result of call back and checks the answer is text.
  async function answerCall(messages, assistant, stream) {
    const call = assistant.tool_calls[0];
    messages.push(assistant, { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ city: 'Paris', celsius: 21 }) });
    const final = stream
      ? await client().chat.completions.stream({ model: 'grok-4.3', messages, tools }).finalChatCompletion()
      : await client().chat.completions.create({ model: 'grok-4.3', messages, tools });
    assert.equal(final.choices[0].finish_reason, 'stop');
    assert.ok(final.choices[0].message.content.length > 0);
    assert.ok(!final.choices[0].message.tool_calls?.length, 'the follow-up was answered with another call');
  }

  it('openai-node, not streamed', async () => {
    const messages = [{ role: 'user', content: ask() }];
    const first = await client().chat.completions.create({ model: 'grok-4.3', messages, tools });
    const choice = first.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
    await answerCall(messages, choice.message, false);
  });

  for (const [how, extra, deltas] of [['the whole call in one chunk', '', 1], ['arguments in deltas', ',"tool_call_deltas":4', 5]]) {
    it(`openai-node, streamed: ${how}`, async () => {
      const messages = [{ role: 'user', content: ask(extra) }];
      const stream = await client().chat.completions.create({ model: 'grok-4.3', messages, tools, stream: true });
      const calls = []; // the tool_calls deltas, in order
      const byIndex = {};
      let finish;
      for await (const chunk of stream) {
        const c = chunk.choices[0];
        if (c?.finish_reason) finish = c.finish_reason;
        for (const d of c?.delta?.tool_calls ?? []) {
          calls.push(d);
          const acc = (byIndex[d.index] ??= { id: '', name: '', arguments: '' });
          acc.id ||= d.id ?? '';
          acc.name += d.function?.name ?? '';
          acc.arguments += d.function?.arguments ?? '';
        }
      }
      assert.equal(finish, 'tool_calls');
      assert.equal(calls.length, deltas);
      assert.deepEqual(Object.keys(byIndex), ['0']);
      assert.equal(byIndex[0].name, 'get_weather');
      assert.deepEqual(JSON.parse(byIndex[0].arguments), { city: 'Paris' });
      assert.match(byIndex[0].id, /^call_/);
      // The SDK's own accumulator agrees.
      const final = await client().chat.completions.stream({ model: 'grok-4.3', messages, tools }).finalChatCompletion();
      const message = final.choices[0].message;
      assert.equal(message.tool_calls[0].function.name, 'get_weather');
      assert.deepEqual(JSON.parse(message.tool_calls[0].function.arguments), { city: 'Paris' });
      await answerCall(messages, message, true);
    });
  }

  // The chat providers, and @ai-sdk/xai's xai(model) on the Responses API.
  const models = () => [...chatModels(gg), ['@ai-sdk/xai (responses)', responsesProvider(gg)('grok-4.3')]];
  for (const [i, provider] of ['@ai-sdk/openai-compatible', '@ai-sdk/xai (chat)', '@ai-sdk/xai (responses)'].entries()) {
    for (const [name, run] of [['generateText', generateText], ['streamText', streamText]]) {
      it(`AI SDK ${name} with ${provider} runs the tool and answers`, async () => {
        const executed = [];
        const [modelProvider, model] = models()[i];
        assert.equal(modelProvider, provider);
        const result = run({
          model,
          maxRetries: 0,
          prompt: ask(),
          stopWhen: stepCountIs(3),
          tools: {
            get_weather: tool({
              description: 'The current weather in a city',
              inputSchema: z.object({ city: z.string() }),
              execute: async ({ city }) => { executed.push(city); return { city, celsius: 21 }; },
            }),
          },
        });
        const steps = await (await result).steps;
        assert.deepEqual(executed, ['Paris']);
        assert.equal(steps.length, 2, 'a tool step, then the answer');
        assert.equal(steps[0].finishReason, 'tool-calls');
        assert.deepEqual(steps[0].toolCalls.map((c) => [c.toolName, c.input]), [['get_weather', { city: 'Paris' }]]);
        assert.deepEqual(steps[0].toolResults[0].output, { city: 'Paris', celsius: 21 });
        assert.equal(steps[1].finishReason, 'stop');
        assert.ok((await (await result).text).length > 0);
      });
    }
  }
});
