// wrap(client, options): an OpenAI, Anthropic or Google Gemini client whose
// model calls are budgeted. It imports no provider package: the client is
// recognised by its shape.
//
//   import OpenAI from 'openai';
//   import { wrap } from 'agentbill/wrap';
//   const openai = wrap(new OpenAI(), { agentId: 'research_agent', customerId: 'user_123' });
//   await openai.chat.completions.create({ ... }); // preflighted, then recorded
//
// The client is changed in place and returned: the same object, with only
// the budgeted methods replaced. Copies made with withOptions() are wrapped
// with the same options (and share the job's estimate).

import { Meter, metered } from './meter.js';
import { fromAnthropic, fromGemini, fromOpenAIChat, fromOpenAIResponses } from './usage.js';

/** Marks a wrapped client (and holds its Meter). */
export const WRAPPED = Symbol.for('agentbill.wrap');

const text = (...parts) => JSON.stringify(parts.filter((p) => p !== undefined)) ?? '';

// What each budgeted method needs: describe(params) tells the preflight
// about the call; prepare(params) is the request sent; fromResponse reads a
// whole answer's usage and id; stream() follows a streamed answer's.

const openaiChat = {
  describe: (p) => ({ model: p.model, maxOutputTokens: p.max_completion_tokens ?? p.max_tokens, promptText: text(p.messages), stream: p.stream === true }),
  // A stream reports usage only when asked to: ask, unless the caller said.
  prepare: (p) => (p.stream === true && p.stream_options?.include_usage === undefined
    ? { ...p, stream_options: { ...p.stream_options, include_usage: true } }
    : p),
  fromResponse: (r) => ({ usage: fromOpenAIChat(r?.usage, { model: r?.model, serviceTier: r?.service_tier }), responseId: r?.id }),
  stream() {
    const last = {};
    return {
      observe(chunk) {
        if (chunk?.id) last.id = chunk.id;
        if (chunk?.model) last.model = chunk.model;
        if (chunk?.service_tier) last.service_tier = chunk.service_tier;
        if (chunk?.usage) last.usage = chunk.usage;
      },
      result: () => openaiChat.fromResponse(last),
    };
  },
};

const openaiResponses = {
  describe: (p) => ({ model: p.model, maxOutputTokens: p.max_output_tokens, promptText: text(p.instructions, p.input), stream: p.stream === true }),
  prepare: (p) => p,
  fromResponse: (r) => ({ usage: fromOpenAIResponses(r?.usage, { model: r?.model, serviceTier: r?.service_tier }), responseId: r?.id }),
  stream() {
    let response; // the newest snapshot: response.created ... response.completed
    return {
      observe(event) {
        if (event?.response) response = event.response;
      },
      result: () => openaiResponses.fromResponse(response),
    };
  },
};

const anthropicMessages = {
  describe: (p) => ({ model: p.model, maxOutputTokens: p.max_tokens, promptText: text(p.system, p.messages), stream: p.stream === true }),
  prepare: (p) => p,
  fromResponse: (r) => ({ usage: fromAnthropic(r?.usage, { model: r?.model }), responseId: r?.id }),
  stream() {
    const message = {};
    return {
      // message_start carries the message and its input usage;
      // message_delta the cumulative output (and any counts it updates).
      observe(event) {
        if (event?.type === 'message_start') {
          Object.assign(message, { id: event.message?.id, model: event.message?.model, usage: { ...event.message?.usage } });
        } else if (event?.type === 'message_delta' && event.usage) {
          message.usage ??= {};
          for (const [k, v] of Object.entries(event.usage)) if (v !== null && v !== undefined) message.usage[k] = v;
        }
      },
      result: () => anthropicMessages.fromResponse(message),
    };
  },
};

const gemini = (stream) => ({
  describe: (p) => ({ model: p.model, maxOutputTokens: p.config?.maxOutputTokens, promptText: text(p.config?.systemInstruction, p.contents), stream }),
  prepare: (p) => p,
  fromResponse: (r, p) => ({ usage: fromGemini(r?.usageMetadata, { model: r?.modelVersion ?? p?.model }), responseId: r?.responseId }),
  stream() {
    const last = {}; // every chunk carries the usage so far
    return {
      observe(chunk) {
        if (chunk?.usageMetadata) last.usageMetadata = chunk.usageMetadata;
        if (chunk?.responseId) last.responseId = chunk.responseId;
        if (chunk?.modelVersion) last.modelVersion = chunk.modelVersion;
      },
      result: (p) => gemini(true).fromResponse(last, p),
    };
  },
});

/** The budgeted methods: where each lives on its client, and how to read it. */
export const TARGETS = Object.freeze([
  { provider: 'openai', path: ['chat', 'completions'], method: 'create', adapter: openaiChat },
  { provider: 'openai', path: ['responses'], method: 'create', adapter: openaiResponses },
  { provider: 'anthropic', path: ['messages'], method: 'create', adapter: anthropicMessages },
  { provider: 'google', path: ['models'], method: 'generateContent', adapter: gemini(false) },
  { provider: 'google', path: ['models'], method: 'generateContentStream', adapter: gemini(true) },
]);

// meterStream follows a streamed answer: settled with its usage when it
// ends, released when it fails or the caller stops early. An OpenAI or
// Anthropic Stream keeps its identity (tee, controller, toReadableStream):
// only its iterator is replaced. Any other async iterable (Gemini's) is
// passed through a new one.
function meterStream(res, adapter, hold, params) {
  const state = adapter.stream();
  const follow = (source) => metered(source, state.observe, {
    onEnd: () => hold.settle(state.result(params)),
    onAbort: () => hold.release(),
  });
  if (typeof res?.iterator === 'function') {
    const iterator = res.iterator.bind(res);
    res.iterator = () => follow({ [Symbol.asyncIterator]: iterator });
    return res;
  }
  return follow(res);
}

// answerOf waits for a sent call's { data, response, request_id, props }:
// OpenAI's and Anthropic's APIPromise give them all (props are what their
// _thenUnwrap transforms are told); a plain promise (Gemini's) only data.
function answerOf(pending) {
  if (typeof pending?._thenUnwrap === 'function') {
    return pending._thenUnwrap((data, props) => ({ data, props })).withResponse()
      .then(({ data: { data, props }, response, request_id: requestId }) => ({ data, props, response, request_id: requestId }));
  }
  if (typeof pending?.withResponse === 'function') return pending.withResponse();
  return Promise.resolve(pending).then((data) => ({ data }));
}

// sdkPromise is the data of `whole` (a promise of answerOf's object) as a
// promise with the SDK promise's withResponse(), asResponse() and
// _thenUnwrap(), which the SDKs' own helpers call on create(): Anthropic's
// messages.stream() calls withResponse(), OpenAI's parse() _thenUnwrap().
// asResponse() gives the Response after AgentBill read the answer from it.
function sdkPromise(whole) {
  const out = whole.then((r) => r.data);
  out.catch(() => {}); // a caller of withResponse() alone gets the error there
  out.withResponse = () => whole.then(({ data, response, request_id: requestId }) => ({ data, response, request_id: requestId }));
  out.asResponse = () => whole.then((r) => r.response);
  out._thenUnwrap = (transform) => sdkPromise(whole.then(async (r) => ({ ...r, data: await transform(r.data, r.props) })));
  return out;
}

function wrapMethod(owner, { provider, path, method, adapter }, meter) {
  const original = owner[method];
  const operation = [...path, method].join('.');
  owner[method] = function budgeted(params, ...rest) {
    const p = params ?? {};
    const d = adapter.describe(p);
    return sdkPromise((async () => {
      const { hold, res } = await meter.send(
        { provider, operation, model: d.model, maxOutputTokens: d.maxOutputTokens, promptText: d.promptText },
        () => answerOf(original.call(owner, adapter.prepare(p), ...rest)),
      );
      if (d.stream) return { ...res, data: meterStream(res.data, adapter, hold, p) };
      await hold.settle(adapter.fromResponse(res.data, p));
      return res;
    })());
  };
}

// targetsOf is the budgeted methods client has: [{ owner, target }].
function targetsOf(client) {
  const found = [];
  for (const target of TARGETS) {
    const owner = target.path.reduce((o, k) => (o === null || o === undefined ? o : o[k]), client);
    if (typeof owner?.[target.method] === 'function') found.push({ owner, target });
  }
  if (found.length === 0) {
    throw new TypeError('wrap: not an OpenAI, Anthropic or Google Gemini client (found none of chat.completions.create, responses.create, messages.create, models.generateContent)');
  }
  return found;
}

function wrapWith(client, meter) {
  for (const { owner, target } of targetsOf(client)) wrapMethod(owner, target, meter);
  if (typeof client.withOptions === 'function') {
    const withOptions = client.withOptions.bind(client);
    client.withOptions = (...args) => wrapWith(withOptions(...args), meter);
  }
  Object.defineProperty(client, WRAPPED, { value: meter });
  return client;
}

/**
 * Budgets a provider client's model calls: before each call a preflight
 * (a refusal throws RefusedError and the request is never sent), after it
 * a record of the usage the provider reported, keyed by the response id; an
 * error before any answer, or a stream that fails or is abandoned, releases
 * the hold. Options: agentId (required), customerId, taskRef, taskCeiling,
 * ttl, scope, estimate (units, or (ctx) => units), pricing ('tokens', the
 * default: the token total as units; 'list': the ledger's list price of
 * the usage, see Meter), agentbill (an AgentBillClient; or apiKey,
 * baseUrl, onUnavailable), logger. Returns the same client.
 */
export function wrap(client, options = {}) {
  if (client === null || typeof client !== 'object') throw new TypeError('wrap: client must be a provider client object');
  if (client[WRAPPED]) throw new TypeError('wrap: this client is already wrapped');
  targetsOf(client); // a wrong object is refused before any AgentBill client is built
  return wrapWith(client, new Meter(options));
}

export { RefusedError } from './index.js';
export { Hold, IDEMPOTENCY_KEY_BYTES_MAX, Meter } from './meter.js';
export default wrap;
