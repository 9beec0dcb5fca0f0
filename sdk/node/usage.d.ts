// Type declarations of agentbill/usage (usage.js): token usage in one shape.

/**
 * Token usage as AgentBill records it. Every count is an integer; a count
 * the provider did not report is absent, never 0.
 */
export interface TokenUsage {
  provider?: string;
  model?: string;
  /** ALL prompt tokens, cache reads and writes included. */
  input_tokens?: number;
  /** ALL output tokens, reasoning included. */
  output_tokens?: number;
  cache_read_tokens?: number;
  /** All cache-write tokens. */
  cache_write_tokens?: number;
  /** The 1-hour part of cache_write_tokens (Anthropic). */
  cache_write_1h_tokens?: number;
  reasoning_tokens?: number;
  service_tier?: string;
}

export declare const TOKEN_FIELDS: readonly string[];
/** A record's metadata `usage` when the provider reported none. */
export declare const USAGE_MISSING: 'missing';
/** How a metered call is charged: its token total as units, or the ledger's list price of its usage. */
export type PricingMode = 'tokens' | 'list';
export declare const PRICING_TOKENS: 'tokens';
export declare const PRICING_LIST: 'list';
export declare const PRICINGS: readonly PricingMode[];
export declare const FIRST_CALL_OUTPUT_TOKENS: number;
export declare const CHARS_PER_TOKEN: number;

export declare function fromOpenAIChat(usage: unknown, info?: { model?: string; serviceTier?: string | null }): TokenUsage | null;
export declare function fromOpenAIResponses(usage: unknown, info?: { model?: string; serviceTier?: string | null }): TokenUsage | null;
export declare function fromAnthropic(usage: unknown, info?: { model?: string }): TokenUsage | null;
export declare function fromGemini(usageMetadata: unknown, info?: { model?: string }): TokenUsage | null;
export declare function fromAiSdk(usage: unknown, info?: { model?: string; provider?: string }): TokenUsage | null;
export declare function fromAgents(usage: unknown, info?: { model?: string }): TokenUsage | null;
export declare function fromLangChain(usageMetadata: unknown, info?: { model?: string; provider?: string }): TokenUsage | null;
export declare function addUsage(a: TokenUsage | null, b: TokenUsage | null): TokenUsage | null;
/** input_tokens + output_tokens; null when either was not reported. */
export declare function unitsOf(usage: TokenUsage | null): number | null;

/** Whether a usage is what the ledger prices: both totals and the model. */
export declare function priceable(usage: TokenUsage | null): boolean;
/**
 * What a record carries for a call's usage: the token total as units
 * ('tokens'), or the usage itself ('list'); missing usage is `held`, with
 * metadata usage "missing".
 */
export declare function recordFields(usage: TokenUsage | null, held: unknown, pricing?: PricingMode): {
  units?: number | unknown;
  usage?: TokenUsage;
  metadataUsage?: TokenUsage | 'missing';
};

/** A job's running estimate (mean of measured calls, capped by mean prompt + max output). */
export declare class Estimator {
  readonly calls: number;
  observe(usage: TokenUsage | null): void;
  estimate(call?: { maxOutputTokens?: number; promptText?: string }): number;
  /** The usage estimate of a call for pricing 'list': model, prompt size or mean, max output tokens or mean. */
  usageEstimate(call: { model?: string; maxOutputTokens?: number; promptText?: string }): { model: string; inputTokens: number; maxOutputTokens: number };
}
