// The Vercel AI SDK's providers, pointed at a grokgate. @ai-sdk/xai dropped
// Chat Completions in its version 5 (xai(model) speaks only the Responses
// API now), so its chat model comes from the last 4.x release, installed as
// @ai-sdk/xai-chat.
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { createXai } from '@ai-sdk/xai';
import { createXai as createXaiChat } from '@ai-sdk/xai-chat';

/** Each provider's chat model for modelId on gg: [name, model] pairs. */
export function chatModels(gg, modelId = 'grok-4.3') {
  return [
    ['@ai-sdk/openai-compatible', createOpenAICompatible({ name: 'grokgate', baseURL: gg.baseURL, apiKey: gg.adminKey }).chatModel(modelId)],
    ['@ai-sdk/xai (chat)', createXaiChat({ baseURL: gg.baseURL, apiKey: gg.adminKey }).chat(modelId)],
  ];
}

/** The latest @ai-sdk/xai provider on gg, whose models post to /responses. */
export function responsesProvider(gg) {
  return createXai({ baseURL: gg.baseURL, apiKey: gg.adminKey });
}
