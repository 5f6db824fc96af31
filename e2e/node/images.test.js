// End-to-end: images, vision and streaming requests with images as the
// openai npm package and the AI SDK see them, against real grokgate
// processes (one per GROKGATE_VISION_STREAM mode, "default" running without
// the setting) answering from the built-in simulator.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { streamText } from 'ai';
import OpenAI from 'openai';

import { chatModels } from './aisdk.js';
import { startGrokgate } from './grokgate.js';

const modes = ['default', 'json', 'native'];
const onePixelPNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
const servers = {}; // mode -> running grokgate

function client(gg) {
  return new OpenAI({ baseURL: gg.baseURL, apiKey: gg.adminKey, maxRetries: 0, timeout: 10_000 });
}

const imageMessages = [{
  role: 'user',
  content: [
    { type: 'text', text: 'What is in this picture?' },
    { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } },
  ],
}];

async function collect(stream) {
  let content = '';
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    content += chunk.choices[0]?.delta?.content ?? '';
  }
  return { chunks, content };
}

describe('images and vision through the openai npm package', () => {
  before(async () => {
    const started = await Promise.all(modes.map((m) =>
      startGrokgate([...(m === 'default' ? [] : ['--vision-stream', m]), '--heartbeat', '100ms'])));
    modes.forEach((m, i) => { servers[m] = started[i]; });
  });
  after(async () => {
    await Promise.all(Object.values(servers).map((gg) => gg.stop()));
  });

  it('images.generate works unmodified, url and b64_json', async () => {
    const c = client(servers.default);
    const byURL = await c.images.generate({ prompt: 'a red fox', n: 3, size: '1792x1024' });
    assert.equal(byURL.data.length, 3);
    for (const img of byURL.data) {
      const res = await fetch(img.url);
      assert.equal(res.status, 200);
      const bytes = new Uint8Array(await res.arrayBuffer());
      assert.deepEqual([...bytes.slice(0, 4)], [0x89, 0x50, 0x4e, 0x47]); // PNG
    }
    const b64 = await c.images.generate({ prompt: 'a red fox', response_format: 'b64_json' });
    assert.ok(!b64.data[0].b64_json.startsWith('data:'));
    assert.deepEqual([...Buffer.from(b64.data[0].b64_json, 'base64').subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  });

  for (const mode of modes) {
    it(`chat with an image and stream:true in ${mode} mode`, async () => {
      const c = client(servers[mode]);
      const whole = await c.chat.completions.create({ model: 'grok-4.3', messages: imageMessages });
      const want = whole.choices[0].message.content;
      assert.ok(want.length > 0);
      const { data: stream, response } = await c.chat.completions
        .create({ model: 'grok-4.3', messages: imageMessages, stream: true })
        .withResponse();
      const got = await collect(stream);
      if (mode === 'json') {
        // Documented: the answer is complete JSON, so an SSE loop sees nothing.
        assert.equal(response.headers.get('x-stream-fallback'), 'true');
        assert.equal(got.chunks, 0);
      } else {
        assert.equal(got.content, want);
        // The default, emulate: one non-streaming upstream call, as SSE.
        if (mode === 'default') assert.equal(response.headers.get('x-stream-fallback'), 'true');
      }
    });

    it(`vision/analyze with stream:true in ${mode} mode`, async () => {
      const c = client(servers[mode]);
      const body = { prompt: 'What is in this picture?', image_url: 'https://example.com/cat.png' };
      const whole = await c.post('/vision/analyze', { body });
      assert.equal(whole.object, 'chat.completion');
      const stream = await c.post('/vision/analyze', { body: { ...body, stream: true }, stream: true });
      const got = await collect(stream);
      if (mode === 'json') assert.equal(got.chunks, 0);
      else assert.equal(got.content, whole.choices[0].message.content);
    });
  }

  for (const [i, provider] of ['@ai-sdk/openai-compatible', '@ai-sdk/xai (chat)'].entries()) {
    it(`AI SDK streamText with an image gets the answer by default (${provider})`, async () => {
      const whole = await client(servers.default).chat.completions.create({ model: 'grok-4.3', messages: imageMessages });
      const result = streamText({
        model: chatModels(servers.default)[i][1],
        maxRetries: 0,
        messages: [{
          role: 'user',
          content: [
            { type: 'text', text: 'What is in this picture?' },
            // Bytes, not a URL: the AI SDK would download a URL itself.
            { type: 'file', data: Buffer.from(onePixelPNG, 'base64'), mediaType: 'image/png' },
          ],
        }],
      });
      let text = '';
      for await (const t of result.textStream) text += t;
      assert.equal(text, whole.choices[0].message.content);
      assert.equal((await result.response).headers['x-stream-fallback'], 'true');
    });
  }

  it('heartbeats during a slow first token do not disturb the stream', async () => {
    const c = client(servers.native);
    const prompt = 'slow thinker';
    const whole = await c.chat.completions.create({ model: 'grok-4.3', messages: [{ role: 'user', content: prompt }] });
    const stream = await c.chat.completions.create({
      model: 'grok-4.3', stream: true,
      messages: [{ role: 'user', content: `${prompt} #sim{"ttft_ms":500}` }],
    });
    const got = await collect(stream);
    assert.equal(got.content, whole.choices[0].message.content);
  });
});
