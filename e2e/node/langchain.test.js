// End-to-end: LangChain JS's ChatOpenAI on the Responses API
// (useResponsesApi) through grokgate: invoke, stream, and a mid-stream
// error that reaches the caller.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChatOpenAI } from '@langchain/openai';

import { startGrokgate } from './grokgate.js';

let gg;

function model(extra = {}) {
  return new ChatOpenAI({
    model: 'grok-4.3', apiKey: gg.adminKey, useResponsesApi: true, maxRetries: 0,
    configuration: { baseURL: gg.baseURL }, ...extra,
  });
}

describe('LangChain ChatOpenAI (Responses API) through grokgate', () => {
  before(async () => {
    gg = await startGrokgate();
  });
  after(async () => {
    if (gg) await gg.stop();
  });

  it('invoke answers with text and usage', async () => {
    const msg = await model().invoke('Say something short. #sim{"chunks":4}');
    assert.equal(msg.text.split(' ').length, 4, msg.text);
    assert.ok(msg.usage_metadata.input_tokens > 0, JSON.stringify(msg.usage_metadata));
    assert.equal(msg.usage_metadata.output_tokens, 4);
    // The Responses API's object, not a chat completion.
    assert.equal(msg.response_metadata.object, 'response', JSON.stringify(msg.response_metadata));
  });

  it('stream yields the text in parts', async () => {
    const parts = [];
    for await (const chunk of await model().stream('Tell me about gateways. #sim{"chunks":5}')) {
      if (chunk.text) parts.push(chunk.text);
    }
    assert.equal(parts.length, 5, JSON.stringify(parts));
  });

  it('a stream that fails after it began raises the error with its message', async () => {
    await assert.rejects(async () => {
      for await (const _ of await model().stream('Hi #sim{"error_after":2}')) { /* drain */ }
    }, (err) => {
      assert.match(String(err.message), /API error: Simulated error after 2 chunks/);
      return true;
    });
  });
});
