// Package simulator is a faithful in-process fake of the xAI REST API
// (https://api.x.ai/v1) as described in docs/wire-format.md.
// grokgate uses it as its default upstream in tests and in `grokgate simulate`,
// so every byte it writes follows what the real API sends: xAI's flat error
// body {"code","error"}, SSE framing, usage arithmetic and model aliases.
//
// A *Simulator is an http.Handler; mount it on any server (httptest.NewServer
// in tests). It keeps no package-level state, so any number can run at once.
//
// # Routes
//
//	POST /v1/chat/completions              chat, streaming or not
//	POST /v1/responses                     the Responses API, streaming or not
//	GET|DELETE /v1/responses/{id}          a stored response; 404 when unknown
//	POST /v1/responses/compact             an opaque compaction item (see handleCompact)
//	POST /v1/images/generations            real PNGs, url or b64_json
//	GET  /v1/models[/{id}]                 {"object":"list","data":[...]}
//	GET  /v1/language-models[/{id}]        chat models with modalities, prices and context_length
//	GET  /v1/image-generation-models[/{id}]
//	GET  /sim/stats                        Stats as JSON, no auth
//	GET  /sim/images/{id}.png              images generated with response_format url, no auth
//
// Every /v1 route needs "Authorization: Bearer <key>". Unknown paths get 404
// and known paths with the wrong method 405, both with an xAI error body.
//
// # Models and aliases
//
// Chat: grok-4.3, grok-4.5, grok-4.6, grok-4.20-0309-reasoning,
// grok-4.20-0309-non-reasoning (text+image input); grok-code-fast-1, grok-3,
// grok-3-mini (text only). Images: grok-imagine-image, grok-imagine-image-2.0,
// grok-imagine-image-quality. Retired ids are accepted and the response's
// "model" is the resolved id (see ResolveModel):
//
//	grok-4-1-fast-reasoning      -> grok-4.3
//	grok-4-1-fast-non-reasoning  -> grok-4.3
//	grok-4-fast-reasoning        -> grok-4.20-0309-reasoning
//	grok-4-fast-non-reasoning    -> grok-4.20-0309-non-reasoning
//	grok-4-0709                  -> grok-4.20-0309-reasoning
//
// grok-code-fast-1 and grok-3 are served under their own ids (not aliased to a
// grok-4.x model) because they must stay text-only: image input to them is a
// 400. A resolved id that contains "reasoning" but not "non-reasoning" is a
// reasoning model: it streams reasoning_content deltas before the content.
//
// # Directives
//
// Behaviour is steered from the text of the LAST user message (string content,
// or its text parts joined by "\n"), or from an image request's prompt, by
// #sim{...} where {...} is one JSON object (it ends at its matching brace). All
// well-formed directives are removed from the prompt and merged left to right;
// a malformed one (bad JSON or a field of the wrong type) is plain text.
// Unknown fields are ignored.
//
//	field             type  default  effect
//	chunks            int   8        content chunks (0..10000); one word each
//	delay_ms          int   0        gap before every delta chunk after the first
//	ttft_ms           int   0        delay before the first data event; stream headers are flushed at once
//	status            int   -        400..599: answer at once with this status and an xAI error body
//	                                 "Simulated upstream error (status N)"
//	retry_after       int   -        seconds; adds Retry-After to a status answer
//	error_after       int   -        stream N content chunks, then the event
//	                                 {"code":"Internal error","error":"Simulated error after N chunks"}
//	                                 and a clean end of body without [DONE];
//	                                 non-streaming: HTTP 500 with that body
//	cut_after         int   -        stream N content chunks, then abort the connection with
//	                                 panic(http.ErrAbortHandler): the chunked body is never
//	                                 terminated, so the client reads io.ErrUnexpectedEOF (no
//	                                 finish chunk, no [DONE]); non-streaming: abort before any byte
//	hang              bool  false    write nothing, not even headers, until the client leaves
//	json_error        bool  false    after ttft_ms, HTTP 200 application/json {"code":"The service
//	                                 is currently unavailable","error":"Timed out waiting for first token"},
//	                                 even for stream:true
//	reasoning_chunks  int   2        reasoning_content deltas (reasoning models only, 0..1000)
//	cached_tokens     int   0        prompt_tokens_details.cached_tokens (capped at prompt_tokens)
//	fail_times        int   0        apply status, json_error and hang only to the first N requests
//	                                 with the same body bytes, then answer normally (for retries)
//	moderate          bool  false    images only: every image comes back moderated
//	                                 (respect_moderation:false, null url/b64_json)
//	tool_call         string -       answer with a call of this function of the request's tools
//	                                 (see Tool calls)
//	arguments         object {}      the call's arguments (a JSON string is sent as is)
//	tool_call_deltas  int   0        stream the arguments in N pieces instead of the whole call
//	                                 in one chunk
//
// On /v1/responses the directives above work the same, read from the last
// user message of "input" (a string input is that message), with these
// differences and additions:
//
//	error_after       int   -        stream N output_text deltas, then the event
//	                                 {"type":"error","sequence_number":K,"code":"Internal error",
//	                                 "message":"Simulated error after N chunks","param":null}
//	                                 and a clean end; non-streaming: HTTP 500 flat body
//	failed_after      int   -        stream N output_text deltas, then response.failed (status
//	                                 "failed", error {"code":"server_error",...}, usage so far);
//	                                 non-streaming: HTTP 200 with that failed response
//	cut_after         int   -        N output_text deltas, then the connection is aborted
//	                                 (no terminal event)
//	reasoning_chunks  int   2        reasoning_summary_text deltas (reasoning models only)
//	event_lines       bool  false    write "event: <type>" before every data line
//	tool_call         string -       answer with a function_call item calling this name
//	arguments         any   {}       its arguments: a JSON string is used as is, anything
//	                                 else is sent as compact JSON
//	server_tool_calls int   1        calls per declared server-side tool type (0..16)
//	omit_usage        bool  false    the terminal response has "usage": null
//
// Precedence: hang, then status, then json_error, then the normal answer.
// Directives act only on requests that pass validation. Images honour hang,
// status, retry_after, ttft_ms and moderate. All waits watch the request
// context and stop the moment the client goes away.
//
// # Streams
//
// Events are "data: <compact json>\n\n", flushed one by one. The first delta
// (reasoning_content for reasoning models, else content) carries
// "role":"assistant"; then come more deltas, the finish chunk
// {"index":0,"delta":{},"finish_reason":"stop"|"length"}, the usage chunk
// ("choices":[]) only when stream_options.include_usage is true, and
// "data: [DONE]".
//
// # Tool calls
//
// A request that offers "tools" and whose last message is the user's is
// answered with one function call when the directive names a tool
// (tool_call), or when tool_choice is "required" (the first tool) or names a
// function (that one, arguments {} unless the directive gives them);
// tool_choice "none" always gets text. A request that ends with the "tool"
// message (the follow-up carrying the result) is answered with text. A call
// of a function the request does not offer, a tool_choice of another shape,
// or arguments that are neither an object nor a string get 400.
//
// The completion's message has "content":"" and "tool_calls":[{"id":"call_...",
// "type":"function","function":{"name","arguments"}}], finish_reason
// "tool_calls". Streamed, as xAI does, the whole call comes in one delta
// (with "index":0 and "role":"assistant"); with tool_call_deltas N the first
// delta has the id, type, name and "arguments":"", and N more carry only
// {"index":0,"function":{"arguments":<piece>}}. Then the finish chunk with
// "finish_reason":"tool_calls". The call counts ceil((len(name) +
// len(arguments)) / 4) completion tokens.
//
// # Responses
//
// Non-streaming answers are the response object (id a bare UUID, object
// "response", status completed | incomplete | failed, output items, usage).
// Its output is, in order: a reasoning item "rs_<id>" (reasoning models),
// one call item per server-side tool call ("ws_<id>_N" web_search_call,
// "xs_" x_search_call, "ci_" code_interpreter_call, "fs_" file_search_call,
// "mcp_" mcp_call, N counting from 0 per type), then either a function_call
// "fc_<id>_0" or the message "msg_<id>". A function call is answered when a
// tool_call directive or tool_choice ("required": the first function tool,
// or a named function) asks, unless the last input item is a
// function_call_output, which is always answered with text. tool_choice
// "none" also suppresses server-side tool calls. The mcp tool's
// authorization and headers are never echoed.
//
// Streams are "data: <json>\n\n" events, each with type and
// sequence_number from 0 without gaps, and no [DONE]: response.created and
// response.in_progress (status in_progress, usage null), then per item
// output_item.added, its own events, output_item.done, and last
// response.completed (response.incomplete when max_output_tokens cut the
// answer) carrying the whole response. Reasoning streams
// reasoning_summary_part.added, reasoning_summary_text.delta x N,
// reasoning_summary_text.done, reasoning_summary_part.done; a tool call its
// status events (response.web_search_call.in_progress|searching|completed,
// likewise x_search_call and file_search_call;
// code_interpreter_call.in_progress|interpreting|completed;
// mcp_call.in_progress|completed); a function call
// function_call_arguments.delta x up to 4, then .done; the message
// content_part.added, output_text.delta x N, one
// output_text.annotation.added (url_citation) per web, X or file search
// call, output_text.done, content_part.done. ttft_ms delays
// response.created; delay_ms comes before every delta after the first.
//
// Responses are stored (store defaults to true; at most 1024, oldest
// dropped) when they complete or end incomplete, and are shared by every
// key, as xAI does not isolate them. previous_response_id continues one:
// the new input adds the earlier conversation's input and visible output
// tokens, and the first text piece starts with "(turn N) " where N counts
// the responses in the chain. Errors on /v1/responses, including
// undecodable bodies (422), use the flat {"code","error"} body. Field names
// are matched exactly (case-sensitive), duplicated fields are 422, fields of
// the wrong type 422, unknown roles, content part types, item types and
// tool types 400; instructions with previous_response_id is 400.
//
// Usage: input_tokens counts like chat's prompt (3 per item or
// instructions plus ceil(bytes/4) of its text, 256 per image, 128 per
// file; items sent back verbatim count ceil(bytes/4) of their JSON);
// output_tokens = text pieces (or function-argument pieces) + reasoning
// pieces, so it includes output_tokens_details.reasoning_tokens, and
// total_tokens = input + output; max_output_tokens caps reasoning first,
// then text. cost_in_usd_ticks prices tokens like chat and adds per call
// 5*10^7 ticks for web_search, x_search and code_interpreter, 2.5*10^7 for
// file_search and nothing for mcp; num_sources_used is 1 per web, X or file
// search call.
//
// # Tokens and cost
//
// The numbers are deterministic; ExpectedUsage computes them from a request
// body exactly as the handler does:
//
//	text_tokens       = sum over messages of (3 + sum over text parts of ceil(len(bytes)/4))
//	                    (directive text included: it was sent)
//	image_tokens      = 256 per image_url part
//	prompt_tokens     = text_tokens + image_tokens
//	cached_tokens     = min(directive cached_tokens, prompt_tokens)
//	completion_tokens = content chunks sent (one token per chunk; max_completion_tokens,
//	                    else max_tokens, caps it and makes finish_reason "length"), or a
//	                    tool call's tokens (see Tool calls)
//	reasoning_tokens  = reasoning chunks sent (reasoning models only; not capped)
//	total_tokens      = prompt + completion + reasoning (xAI arithmetic)
//	cost_in_usd_ticks = (prompt-cached)*prompt_price + cached*cached_price
//	                    + (completion+reasoning)*completion_price
//
// Prices are in ticks per token (10^10 ticks = 1 USD) and are listed by
// /v1/language-models; grok-4.3 costs 2000/500/5000 (input/cached/output),
// the same as grok-4-fast, so the recorded example in docs/wire-format.md
// (165 prompt, 164 cached, 2 completion, 129 reasoning) costs 739000 here too.
// An image costs its model's image_price, doubled for resolution 2k.
//
// # Stats
//
// Requests counts every request outside /sim/. StreamsStarted counts
// streaming chat and Responses requests that passed validation and were not answered by a
// status or json_error directive; each ends as completed ([DONE] written),
// canceled (client left first, hang included), or neither (error_after,
// failed_after, cut_after). RequestsCanceled counts non-streaming chat and
// Responses requests whose client
// left before the answer was ready. ImagesGenerated counts images delivered
// (not moderated ones).
package simulator
