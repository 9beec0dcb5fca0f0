// Token usage as AgentBill reads it: one normalizer per provider turns what
// the provider reported into one shape, and one function (unitsOf) turns
// that shape into units. The shape is the `usage` of a record (snake_case,
// token counts as integers). recordFields is the one place that decides
// what a record carries: those units (pricing 'tokens', the usage in its
// metadata), or the usage itself for the ledger to charge at list price
// (pricing 'list').
//
//   input_tokens           ALL prompt tokens, cache reads and writes included
//   cache_read_tokens      the part of input read from cache
//   cache_write_tokens     the part of input written to cache (all TTLs)
//   cache_write_1h_tokens  the 1-hour part of cache_write_tokens (Anthropic)
//   output_tokens          ALL output tokens, reasoning included
//   reasoning_tokens       the reasoning part of output_tokens
//   service_tier           the tier the provider served the call on
//   model, provider        who answered
//
// A field the provider did not report is left out, never set to 0. A
// normalizer returns null when the provider reported no usage at all.

/** Token counts (integers) of the usage shape, in the order records list them. */
export const TOKEN_FIELDS = Object.freeze([
  'input_tokens', 'output_tokens', 'cache_read_tokens', 'cache_write_tokens', 'cache_write_1h_tokens', 'reasoning_tokens',
]);

/** What a record's metadata says in `usage` when the provider reported none. */
export const USAGE_MISSING = 'missing';

/** Pricing 'tokens' (the default): a call is charged its token total as units. */
export const PRICING_TOKENS = 'tokens';
/** Pricing 'list': a call is charged the list price the ledger computes from its usage. */
export const PRICING_LIST = 'list';
/** How a metered call is charged (the `pricing` option of wrap and the integrations). */
export const PRICINGS = Object.freeze([PRICING_TOKENS, PRICING_LIST]);

/**
 * Output tokens the first call of a job is assumed to produce when it sets
 * no max output tokens of its own (there is no measured call to average yet).
 */
export const FIRST_CALL_OUTPUT_TOKENS = 1024;
/**
 * Characters per prompt token when the first call's prompt is sized from its
 * text (the common rule of thumb for English text in BPE tokenizers).
 */
export const CHARS_PER_TOKEN = 4;

// count is a reported token count, or undefined when it was not reported
// (null, absent, or not a non-negative integer).
function count(v) {
  return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

function sum(...vs) {
  return vs.every((v) => v === undefined) ? undefined : vs.reduce((a, v) => a + (v ?? 0), 0);
}

// shape builds a usage object, leaving out every field that is undefined.
function shape(fields) {
  const u = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null) u[k] = v;
  return TOKEN_FIELDS.some((k) => k in u) ? u : null;
}

// The names of OpenAI's usage fields: [input, output, input details,
// output details] in Chat Completions and in Responses.
const OPENAI_CHAT = ['prompt_tokens', 'completion_tokens', 'prompt_tokens_details', 'completion_tokens_details'];
const OPENAI_RESPONSES = ['input_tokens', 'output_tokens', 'input_tokens_details', 'output_tokens_details'];

// fromOpenAI reads an OpenAI usage: its input already includes cached
// tokens, its output already includes reasoning tokens.
function fromOpenAI(usage, [input, output, inDetails, outDetails], { model, serviceTier } = {}) {
  if (!usage) return null;
  return shape({
    provider: 'openai',
    model,
    input_tokens: count(usage[input]),
    output_tokens: count(usage[output]),
    cache_read_tokens: count(usage[inDetails]?.cached_tokens),
    cache_write_tokens: count(usage[inDetails]?.cache_write_tokens),
    reasoning_tokens: count(usage[outDetails]?.reasoning_tokens),
    service_tier: serviceTier ?? undefined,
  });
}

/** OpenAI Chat Completions: `usage` of a completion or of the last stream chunk. */
export const fromOpenAIChat = (usage, info) => fromOpenAI(usage, OPENAI_CHAT, info);

/** OpenAI Responses: `usage` of a response. */
export const fromOpenAIResponses = (usage, info) => fromOpenAI(usage, OPENAI_RESPONSES, info);

/**
 * Anthropic Messages (`usage` of a message, or message_start's merged with
 * message_delta's): its input_tokens EXCLUDE cache reads and writes, so
 * input is the sum of the three.
 */
export function fromAnthropic(usage, { model } = {}) {
  if (!usage) return null;
  const read = count(usage.cache_read_input_tokens);
  const write = count(usage.cache_creation_input_tokens);
  const uncached = count(usage.input_tokens);
  return shape({
    provider: 'anthropic',
    model,
    input_tokens: uncached === undefined ? undefined : sum(uncached, read, write),
    output_tokens: count(usage.output_tokens),
    cache_read_tokens: read,
    cache_write_tokens: write,
    cache_write_1h_tokens: count(usage.cache_creation?.ephemeral_1h_input_tokens),
    service_tier: usage.service_tier ?? undefined,
  });
}

/**
 * Google Gemini (`usageMetadata` of @google/genai, camelCase): the prompt
 * count includes cached content; output is candidates plus thoughts.
 * (toolUsePromptTokenCount is not counted: the ledger's usage has no field
 * for it yet.)
 */
export function fromGemini(meta, { model } = {}) {
  if (!meta) return null;
  const candidates = count(meta.candidatesTokenCount);
  const thoughts = count(meta.thoughtsTokenCount);
  return shape({
    provider: 'google',
    model,
    input_tokens: count(meta.promptTokenCount),
    output_tokens: sum(candidates, thoughts),
    cache_read_tokens: count(meta.cachedContentTokenCount),
    reasoning_tokens: thoughts,
  });
}

/**
 * The Vercel AI SDK's LanguageModelV4Usage: inputTokens.total includes cache
 * reads and writes, outputTokens.total includes reasoning.
 */
export function fromAiSdk(usage, { model, provider } = {}) {
  if (!usage) return null;
  return shape({
    provider,
    model,
    input_tokens: count(usage.inputTokens?.total),
    output_tokens: count(usage.outputTokens?.total),
    cache_read_tokens: count(usage.inputTokens?.cacheRead),
    cache_write_tokens: count(usage.inputTokens?.cacheWrite),
    reasoning_tokens: count(usage.outputTokens?.reasoning),
  });
}

/**
 * The OpenAI Agents SDK's Usage (a run's, one model response's, or a
 * stream's response_done): its counts are the Responses API's, summed over
 * the run's model calls. The SDK writes 0 for a count the model did not
 * report, so 0 input tokens (no prompt is empty) or 0 requests is read as
 * no usage reported.
 */
export function fromAgents(usage, { model } = {}) {
  if (!usage || usage.requests === 0 || !(usage.inputTokens > 0)) return null;
  const details = (list, k) => sum(...(Array.isArray(list) ? list : [list]).map((d) => count(d?.[k])));
  return shape({
    provider: 'openai',
    model,
    input_tokens: count(usage.inputTokens),
    output_tokens: count(usage.outputTokens),
    cache_read_tokens: details(usage.inputTokensDetails, 'cached_tokens'),
    reasoning_tokens: details(usage.outputTokensDetails, 'reasoning_tokens'),
  });
}

/**
 * LangChain's usage_metadata (input_token_details / output_token_details):
 * input_tokens include cache reads and writes, output_tokens include
 * reasoning.
 */
export function fromLangChain(meta, { model, provider } = {}) {
  if (!meta) return null;
  return shape({
    provider,
    model,
    input_tokens: count(meta.input_tokens),
    output_tokens: count(meta.output_tokens),
    cache_read_tokens: count(meta.input_token_details?.cache_read),
    cache_write_tokens: count(meta.input_token_details?.cache_creation),
    reasoning_tokens: count(meta.output_token_details?.reasoning),
  });
}

/** Adds usages of one job's calls field by field (absent stays absent). */
export function addUsage(a, b) {
  if (!a) return b ?? null;
  if (!b) return a;
  const out = { ...a };
  for (const k of TOKEN_FIELDS) {
    const v = sum(a[k], b[k]);
    if (v !== undefined) out[k] = v;
  }
  for (const k of ['model', 'provider', 'service_tier']) if (out[k] !== b[k]) delete out[k];
  return out;
}

/**
 * The units of a usage: its token total, input_tokens + output_tokens
 * (cache reads and writes are inside input, reasoning inside output, so
 * nothing is counted twice). null when either count was not reported: the
 * usage is then missing, and never charged as 0. This is the one place that
 * turns usage into units; when the ledger prices usage, a record sends the
 * usage itself instead.
 */
export function unitsOf(usage) {
  if (!usage || usage.input_tokens === undefined || usage.output_tokens === undefined) return null;
  return usage.input_tokens + usage.output_tokens;
}

/** Whether a usage is what the ledger prices: both totals and the model. */
export function priceable(usage) {
  return unitsOf(usage) !== null && typeof usage.model === 'string' && usage.model !== '';
}

/**
 * What a record carries for a call's usage: { units, usage, metadataUsage }
 * (undefined is left out). With PRICING_TOKENS the units are the token
 * total (unitsOf) and the metadata shows the usage. With PRICING_LIST the
 * usage is sent without units, so the ledger charges its list price. A
 * usage without what the charge needs (both totals; with list pricing the
 * model too) is missing: it is charged `held` (what the preflight held,
 * never 0), with metadata usage "missing".
 */
export function recordFields(usage, held, pricing = PRICING_TOKENS) {
  if (!(pricing === PRICING_LIST ? priceable(usage) : unitsOf(usage) !== null)) {
    return { units: held, usage: undefined, metadataUsage: USAGE_MISSING };
  }
  if (pricing === PRICING_LIST) return { units: undefined, usage, metadataUsage: undefined };
  return { units: unitsOf(usage), usage: undefined, metadataUsage: usage };
}

/**
 * A job's running estimate. The estimate of a call is the mean units of the
 * job's measured calls, capped by their mean prompt plus the call's own max
 * output tokens; before any call is measured, the call's prompt sized from
 * its text plus its max output tokens (FIRST_CALL_OUTPUT_TOKENS if unset).
 * Only calls whose usage was reported count.
 */
export class Estimator {
  calls = 0;
  unitsSum = 0;
  inputSum = 0;

  /** Counts one call's reported usage (a missing usage is not a measurement). */
  observe(usage) {
    const units = unitsOf(usage);
    if (units === null) return;
    this.calls += 1;
    this.unitsSum += units;
    this.inputSum += usage.input_tokens;
  }

  /** The estimate (a positive integer) of a call with the given max output tokens and prompt text. */
  estimate({ maxOutputTokens, promptText = '' } = {}) {
    const maxOut = count(maxOutputTokens);
    if (this.calls === 0) {
      return Math.max(1, Math.ceil(promptText.length / CHARS_PER_TOKEN) + (maxOut ?? FIRST_CALL_OUTPUT_TOKENS));
    }
    const mean = Math.ceil(this.unitsSum / this.calls);
    const cap = maxOut === undefined ? Infinity : Math.ceil(this.inputSum / this.calls) + maxOut;
    return Math.max(1, Math.min(mean, cap));
  }

  /**
   * The usage estimate the ledger prices for a call (pricing 'list'): the
   * call's model; as input tokens the prompt sized from its text, or once
   * calls were measured their mean prompt; as max output tokens the call's
   * own maximum, else the measured calls' mean output (before any,
   * FIRST_CALL_OUTPUT_TOKENS).
   */
  usageEstimate({ model, maxOutputTokens, promptText = '' } = {}) {
    if (typeof model !== 'string' || model === '') {
      throw new TypeError(`pricing '${PRICING_LIST}' needs the call's model to price it`);
    }
    const measured = this.calls > 0;
    const inputTokens = measured ? Math.ceil(this.inputSum / this.calls) : Math.ceil(promptText.length / CHARS_PER_TOKEN);
    const output = measured ? Math.ceil((this.unitsSum - this.inputSum) / this.calls) : FIRST_CALL_OUTPUT_TOKENS;
    return { model, inputTokens, maxOutputTokens: count(maxOutputTokens) ?? output };
  }
}
