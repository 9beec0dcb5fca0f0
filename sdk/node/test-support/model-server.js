// A stand-in model server on 127.0.0.1 for tests and examples: it answers
// OpenAI Chat Completions and Responses, Anthropic Messages, and Google
// Gemini generateContent / streamGenerateContent with each API's documented
// JSON, or server-sent events carrying usage, counts the requests that
// reach it, and can be told to fail.
//
//   const models = await ModelServer.start();
//   new OpenAI({ apiKey: 'x', baseURL: `${models.url}/v1` });
//   new Anthropic({ apiKey: 'x', baseURL: models.url });
//   new GoogleGenAI({ apiKey: 'x', httpOptions: { baseUrl: models.url } });
//
// Every answer reports USAGE (per API below); `failure` set to 'http500'
// answers an API error, 'abort' cuts a stream after its first event (a
// JSON answer: the connection is dropped before any byte).

import http from 'node:http';
import { randomUUID } from 'node:crypto';

/** The usage every answer reports, in each API's own field names. */
export const USAGE = Object.freeze({
  openaiChat: {
    prompt_tokens: 120, completion_tokens: 30, total_tokens: 150,
    prompt_tokens_details: { cached_tokens: 20 }, completion_tokens_details: { reasoning_tokens: 10 },
  },
  openaiResponses: {
    input_tokens: 100, output_tokens: 40, total_tokens: 140,
    input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 15 },
  },
  // Anthropic's input_tokens exclude cache reads and writes: 50 + 10 + 5 in all.
  anthropic: {
    input_tokens: 50, cache_read_input_tokens: 10, cache_creation_input_tokens: 5,
    cache_creation: { ephemeral_5m_input_tokens: 3, ephemeral_1h_input_tokens: 2 }, output_tokens: 25,
  },
  gemini: { promptTokenCount: 80, candidatesTokenCount: 20, thoughtsTokenCount: 7, cachedContentTokenCount: 8, totalTokenCount: 107 },
});

/** Token totals (input + output) of USAGE per API: what a recorded call is charged. */
export const UNITS = Object.freeze({ openaiChat: 150, openaiResponses: 140, anthropic: 90, gemini: 107 });

/** The largest request body read, in bytes. */
export const REQUEST_BYTES_MAX = 1024 * 1024;

const MODEL_TEXT = 'hello from the stand-in';

const sse = (res, events) => {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  return events;
};

export class ModelServer {
  /** Requests received, by API: openaiChat, openaiResponses, anthropic, gemini. */
  requests = { openaiChat: 0, openaiResponses: 0, anthropic: 0, gemini: 0 };
  /** null (answer), 'http500' or 'abort'. */
  failure = null;
  /** Milliseconds to wait before answering (so concurrent calls overlap). */
  delayMs = 0;
  /** When true, answers report no usage at all. */
  omitUsage = false;
  /**
   * A tool name: a Responses request that offers tools and carries no tool
   * output yet is answered with a call of this tool (JSON answers only).
   */
  toolCall = null;
  /** The request bodies received, newest last. */
  bodies = [];

  static async start() {
    const s = new ModelServer();
    s.server = http.createServer((req, res) => s.#handle(req, res).catch((err) => {
      res.destroy(err);
    }));
    await new Promise((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.url = `http://127.0.0.1:${s.server.address().port}`;
    return s;
  }

  /**
   * Runs fn with some settings changed ({ failure, delayMs, omitUsage,
   * toolCall }), and puts them back after, however fn ends.
   */
  async with(settings, fn) {
    const saved = Object.fromEntries(Object.keys(settings).map((k) => [k, this[k]]));
    Object.assign(this, settings);
    try {
      return await fn();
    } finally {
      Object.assign(this, saved);
    }
  }

  get total() {
    return Object.values(this.requests).reduce((a, n) => a + n, 0);
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  async #body(req) {
    const chunks = [];
    let size = 0;
    for await (const c of req) {
      size += c.length;
      if (size > REQUEST_BYTES_MAX) throw new Error(`request over ${REQUEST_BYTES_MAX} bytes`);
      chunks.push(c);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    return text ? JSON.parse(text) : {};
  }

  async #handle(req, res) {
    const url = new URL(req.url, this.url);
    const body = await this.#body(req);
    const api = apiOf(req.method, url.pathname);
    if (!api) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `no route ${req.method} ${url.pathname}` } }));
      return;
    }
    this.requests[api] += 1;
    this.bodies.push({ api, path: url.pathname, body });
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const stream = body.stream === true || url.pathname.endsWith(':streamGenerateContent');
    if (this.failure === 'http500') return this.#fail500(res, api);
    if (this.failure === 'abort' && !stream) return void res.destroy();
    const usage = this.omitUsage ? undefined : USAGE[api];
    const answer = ANSWERS[api];
    if (!stream && api === 'openaiResponses' && this.toolCall && body.tools?.length && !hasToolOutput(body.input)) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ ...answer.json(body, usage, url), output: [toolCallItem(this.toolCall)] }));
      return;
    }
    if (!stream) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(answer.json(body, usage, url)));
      return;
    }
    const events = sse(res, answer.events(body, usage, url));
    for (const [i, ev] of events.entries()) {
      const name = ev.event ? `event: ${ev.event}\n` : '';
      res.write(`${name}data: ${typeof ev.data === 'string' ? ev.data : JSON.stringify(ev.data)}\n\n`);
      if (this.failure === 'abort' && i === 0) {
        await new Promise((r) => setTimeout(r, 10));
        return void res.destroy();
      }
    }
    res.end();
  }

  #fail500(res, api) {
    res.writeHead(500, { 'Content-Type': 'application/json' });
    const error = api === 'anthropic'
      ? { type: 'error', error: { type: 'api_error', message: 'stand-in failure' } }
      : api === 'gemini'
        ? { error: { code: 500, message: 'stand-in failure', status: 'INTERNAL' } }
        : { error: { message: 'stand-in failure', type: 'server_error', code: null } };
    res.end(JSON.stringify(error));
  }
}

function apiOf(method, path) {
  if (method !== 'POST') return null;
  if (path.endsWith('/chat/completions')) return 'openaiChat';
  if (path.endsWith('/responses')) return 'openaiResponses';
  if (path.endsWith('/messages')) return 'anthropic';
  if (/\/models\/[^/]+:(generateContent|streamGenerateContent)$/.test(path)) return 'gemini';
  return null;
}

const now = () => Math.floor(Date.now() / 1000);

// Each API's answer as JSON and as its stream of server-sent events.
const ANSWERS = {
  openaiChat: {
    json: (b, usage) => ({
      id: `chatcmpl-${randomUUID()}`, object: 'chat.completion', created: now(), model: b.model, service_tier: 'default',
      choices: [{ index: 0, message: { role: 'assistant', content: MODEL_TEXT, refusal: null }, finish_reason: 'stop', logprobs: null }],
      ...(usage ? { usage } : {}),
    }),
    events(b, usage) {
      const id = `chatcmpl-${randomUUID()}`;
      const chunk = (choices, extra = {}) => ({ data: { id, object: 'chat.completion.chunk', created: now(), model: b.model, service_tier: 'default', choices, ...extra } });
      const out = [
        chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]),
        chunk([{ index: 0, delta: { content: MODEL_TEXT }, finish_reason: null }]),
        chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]),
      ];
      // With stream_options.include_usage, a last chunk with no choices carries the usage.
      if (b.stream_options?.include_usage && usage) out.push(chunk([], { usage }));
      out.push({ data: '[DONE]' });
      return out;
    },
  },
  openaiResponses: {
    json: (b, usage) => responseObject(`resp_${randomUUID().replaceAll('-', '')}`, b, 'completed', usage),
    events(b, usage) {
      const id = `resp_${randomUUID().replaceAll('-', '')}`;
      const item = messageItem();
      let seq = 0;
      const ev = (type, data) => ({ event: type, data: { type, sequence_number: seq++, ...data } });
      return [
        ev('response.created', { response: responseObject(id, b, 'in_progress') }),
        ev('response.output_item.added', { output_index: 0, item: { ...item, status: 'in_progress', content: [] } }),
        ev('response.content_part.added', { item_id: item.id, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } }),
        ev('response.output_text.delta', { item_id: item.id, output_index: 0, content_index: 0, delta: MODEL_TEXT, logprobs: [] }),
        ev('response.output_text.done', { item_id: item.id, output_index: 0, content_index: 0, text: MODEL_TEXT, logprobs: [] }),
        ev('response.content_part.done', { item_id: item.id, output_index: 0, content_index: 0, part: item.content[0] }),
        ev('response.output_item.done', { output_index: 0, item }),
        ev('response.completed', { response: responseObject(id, b, 'completed', usage) }),
      ];
    },
  },
  anthropic: {
    json: (b, usage) => ({
      id: `msg_${randomUUID().replaceAll('-', '')}`, type: 'message', role: 'assistant', model: b.model,
      content: [{ type: 'text', text: MODEL_TEXT }], stop_reason: 'end_turn', stop_sequence: null,
      ...(usage ? { usage } : {}),
    }),
    events(b, usage) {
      const id = `msg_${randomUUID().replaceAll('-', '')}`;
      const { output_tokens: out, ...input } = usage ?? {};
      const ev = (type, data) => ({ event: type, data: { type, ...data } });
      return [
        ev('message_start', {
          message: {
            id, type: 'message', role: 'assistant', model: b.model, content: [], stop_reason: null, stop_sequence: null,
            ...(usage ? { usage: { ...input, output_tokens: 1 } } : {}),
          },
        }),
        ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
        ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: MODEL_TEXT } }),
        ev('content_block_stop', { index: 0 }),
        ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, ...(usage ? { usage: { output_tokens: out } } : {}) }),
        ev('message_stop', {}),
      ];
    },
  },
  gemini: {
    json: (b, usage, url) => geminiResponse(url, MODEL_TEXT, usage),
    // Every chunk carries the usage so far; the last one the final counts.
    events: (b, usage, url) => [
      { data: geminiResponse(url, 'hello ', usage && { promptTokenCount: usage.promptTokenCount, totalTokenCount: usage.promptTokenCount }, null) },
      { data: geminiResponse(url, 'from the stand-in', usage) },
    ],
  },
};

const hasToolOutput = (input) => Array.isArray(input) && input.some((i) => i?.type === 'function_call_output');

function toolCallItem(name) {
  const id = randomUUID().replaceAll('-', '');
  return { type: 'function_call', id: `fc_${id}`, call_id: `call_${id}`, name, arguments: '{}', status: 'completed' };
}

function messageItem() {
  return {
    id: `msg_${randomUUID().replaceAll('-', '')}`, type: 'message', role: 'assistant', status: 'completed',
    content: [{ type: 'output_text', text: MODEL_TEXT, annotations: [], logprobs: [] }],
  };
}

function responseObject(id, b, status, usage) {
  return {
    id, object: 'response', created_at: now(), status, model: b.model, service_tier: 'default',
    output: status === 'completed' ? [messageItem()] : [],
    parallel_tool_calls: true, tool_choice: 'auto', tools: [], temperature: 1, top_p: 1,
    instructions: b.instructions ?? null, max_output_tokens: b.max_output_tokens ?? null,
    error: null, incomplete_details: null, metadata: {}, text: { format: { type: 'text' } },
    ...(usage && status === 'completed' ? { usage } : { usage: null }),
  };
}

function geminiResponse(url, textPart, usage, finishReason = 'STOP') {
  const model = url.pathname.match(/\/models\/([^/:]+):/)[1];
  return {
    candidates: [{ content: { role: 'model', parts: [{ text: textPart }] }, index: 0, ...(finishReason ? { finishReason } : {}) }],
    ...(usage ? { usageMetadata: usage } : {}),
    modelVersion: model,
    responseId: `gem-${randomUUID()}`,
  };
}
