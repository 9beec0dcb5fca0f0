// Type declarations of the AgentBill Node.js SDK (index.js).

/**
 * An amount sent to AgentBill: a number (an integer up to 2^53, or a finite
 * decimal such as 0.5), a string holding a decimal ("12.25"), or a bigint.
 */
export type UnitsInput = number | string | bigint;
/** An amount in a reply: the exact decimal as a string, e.g. "92.75". */
export type Units = string;
/**
 * A signed amount in a reply: remaining units, negative ("-2.5") when the
 * customer is in its overdraft.
 */
export type SignedUnits = string;
/** A run's scope: dimension to value, e.g. { team: 'research', user: 'alice' } (at most 4). */
export type Scope = Record<string, string>;

export declare const VERSION: string;
export declare const DEFAULT_BASE_URL: string;
export declare const DEFAULT_TIMEOUT_MS: number;
export declare const DEFAULT_MAX_RETRIES: number;
export declare const BACKOFF_MIN_MS: number;
export declare const BACKOFF_MAX_MS: number;
/**
 * The largest reply body the client reads, in bytes; a longer one is
 * abandoned once its bytes pass this bound, with an AgentBillError.
 */
export declare const RESPONSE_BYTES_MAX: number;
/** What a preflight does when AgentBill is still unavailable after the retries. */
export type OnUnavailable = 'deny' | 'allow';
export declare const ON_UNAVAILABLE: readonly OnUnavailable[];
/** Milliseconds between two "budget check skipped" warnings at most. */
export declare const SKIPPED_WARN_INTERVAL_MS: number;
/** The message of an unchecked approval. */
export declare const UNCHECKED_MESSAGE: string;

export type ErrorCode =
  | 'invalid_argument'
  | 'unauthenticated'
  | 'permission_denied'
  | 'not_found'
  | 'conflict'
  | 'unavailable'
  | 'internal'
  | 'refused';

export type RefusalReason =
  | 'budget_exhausted'
  | 'agent_limit_exceeded'
  | 'task_ceiling_exceeded'
  | 'ceiling_exceeded'
  | 'scope_limit_exceeded'
  | 'concurrency_limit_exceeded'
  | 'rate_limited'
  | 'no_budget';
/** Every refusal reason, in the order the ledger checks them. */
export declare const REFUSAL_REASONS: readonly RefusalReason[];

/** A scope value: the scope limit that refused a preflight. */
export interface ScopeRef {
  dimension: string;
  value: string;
}

export declare class AgentBillError extends Error {
  constructor(message: string, options?: { code?: ErrorCode | string; status?: number | null; cause?: unknown });
  /** The gateway's error code. */
  code: ErrorCode | string;
  /** The HTTP status; null when no answer came back. */
  status: number | null;
  /** Set by gate() when the run succeeded but recording it failed. */
  result?: unknown;
}
export declare class InvalidArgumentError extends AgentBillError {}
export declare class AuthenticationError extends AgentBillError {}
export declare class PermissionDeniedError extends AgentBillError {}
export declare class NotFoundError extends AgentBillError {}
export declare class ConflictError extends AgentBillError {}
export declare class UnavailableError extends AgentBillError {}
export declare class InternalError extends AgentBillError {}
/** 429: the API key is past the gateway's per-key rate limit; not retried. */
export declare class RateLimitedError extends AgentBillError {
  /** The Retry-After header, in milliseconds, or null. */
  retryAfterMs: number | null;
}
export declare class RefusedError extends AgentBillError {
  constructor(preflight: PreflightResult);
  reason: RefusalReason | string;
  remainingUnits: SignedUnits | null;
  upgradeUrl: string | null;
  /** The scope limit that refused (reason scope_limit_exceeded), else null. */
  scope: ScopeRef | null;
  /** For rate_limited: milliseconds to wait before the customer's next preflight; else null. */
  retryAfterMs: number | null;
  preflight: PreflightResult;
}

export declare class Usage<T = unknown> {
  constructor(units: UnitsInput, result?: T);
  units: UnitsInput;
  result: T;
}
/** Returned by a gated function: record `units`, hand `result` to the caller. */
export declare function usage<T>(units: UnitsInput, result?: T): Usage<T>;

/** Parses a JSON reply keeping every number's exact text. */
export declare function parseExact(text: string): any;
/** An exact decimal as the ledger writes it: reduced, no exponent, "0" for zero. */
export declare function decimalText(v: string | number): string;

/** The string fields of a usage and a usage estimate (wire names). */
export declare const USAGE_NAMES: readonly string[];
/** The token counts of a record's usage (wire names). */
export declare const USAGE_COUNTS: readonly string[];
/** The token counts of a usage estimate (wire names). */
export declare const ESTIMATE_COUNTS: readonly string[];

/**
 * A model call to price before it runs, at its worst case: every prompt
 * token at the input rate and all of maxOutputTokens at the output rate.
 * Counts are integers. The wire's snake_case keys (input_tokens) are
 * accepted too.
 */
export interface UsageEstimate {
  model: string;
  inputTokens: number;
  maxOutputTokens: number;
  provider?: string;
  serviceTier?: string;
}

/**
 * A model call's usage, to charge at the customer's price list: the
 * TokenUsage shape of agentbill/usage (snake_case, as the normalizers
 * return it), or the same keys in camelCase. A count not reported is left
 * out, never 0.
 */
export type UsageReport = { model: string } & Record<string, string | number | undefined | null>;

/** One kind's part of a priced charge: tokens of kind at rate per million tokens. */
export interface PriceLine {
  /** input, cache_read, cache_write, cache_write_5m, cache_write_1h, output, reasoning. */
  kind: string;
  tokens: number;
  rate: Units;
}

/**
 * How usage (RecordResult.pricing) or an estimate
 * (PreflightResult.estimatePricing) was priced.
 */
export declare class Pricing {
  constructor(wire: Record<string, any>);
  list: string;
  version: string;
  model: string;
  provider: string | null;
  serviceTier: string | null;
  /** The long-context tier the prompt crossed; null: none. */
  aboveInputTokens: number | null;
  /** The kinds charged. */
  lines: PriceLine[];
  requestFee: Units | null;
  total: Units;
  /** The charge as `agentbill audit` writes it: "1,200 input x 3/M + 400 output x 15/M = 0.0096 (m, list default v1)". */
  describe(): string;
}

/** A price list (docs/PROTOCOL.md, "Priced usage"); decimals as strings, never fractional numbers. */
export interface PriceList {
  list: string;
  version: string;
  currency?: string;
  note?: string;
  models: Array<Record<string, unknown>>;
}

/** The answer to setPrices. */
export interface PricesResult {
  list: string;
  version: string;
  /** SHA-256 of the list as stored. */
  digest: string;
  /** The number of models. */
  models: number;
  /** false: this version with these prices was set already; nothing was appended. */
  changed: boolean;
  /** Which writer answered, of how many. */
  partition: number;
  partitions: number;
  raw: Record<string, unknown>;
}

/** One price list set, as priceLists shows it. */
export interface PriceListInfo {
  list: string;
  version: string;
  digest: string;
  models: number;
  setAt: string | null;
  /** The whole list (amounts as exact strings) when asked for by name, else null. */
  prices: Record<string, any> | null;
}

export interface PriceListsResult {
  lists: PriceListInfo[];
  raw: Record<string, unknown>;
}

export interface ClientOptions {
  /** Defaults to AGENTBILL_API_KEY. */
  apiKey?: string;
  /** Defaults to AGENTBILL_BASE_URL, then DEFAULT_BASE_URL. */
  baseUrl?: string;
  timeoutMs?: number;
  maxRetries?: number;
  fetch?: typeof fetch;
  /**
   * The fail policy, applied only when the service is still unavailable
   * after the retries: 'deny' (default) throws UnavailableError; 'allow'
   * returns an approval with unchecked true and no reservation.
   */
  onUnavailable?: OnUnavailable;
  /** Where the 'allow' policy's warnings go (default console). */
  logger?: { warn(message: string): void };
}

export interface PreflightOptions {
  agentId: string;
  /** Default: the key's customer if bound, else "default". */
  customerId?: string;
  /** Default 1. */
  estimatedUnits?: UnitsInput;
  ceiling?: UnitsInput;
  taskRef?: string;
  taskCeiling?: UnitsInput;
  /** A Go duration ("15m") or milliseconds. */
  ttl?: string | number;
  idempotencyKey?: string;
  metadata?: Record<string, unknown>;
  /** Where the run belongs; every scope limit of a value it names must fit too. */
  scope?: Scope;
  /** Accept a partial hold: if estimatedUnits does not fit but this does, hold the most that fits. */
  minUnits?: UnitsInput;
  /** Instead of estimatedUnits: a model call the ledger prices from the customer's price list. */
  usageEstimate?: UsageEstimate;
}

export interface PreflightResult {
  approved: boolean;
  reason: RefusalReason | string | null;
  message: string;
  reservationId: string | null;
  /** The hold: less than the estimate when partial. */
  reservedUnits: Units | null;
  /** Negative when the customer is in its overdraft. */
  remainingUnits: SignedUnits | null;
  expiresAt: string | null;
  upgradeUrl: string | null;
  /** The hold is less than the estimate (minUnits allowed it). */
  partial: boolean;
  /** The hold took the customer below zero, into its overdraft. */
  overdraft: boolean;
  /** The scope limit that refused (reason scope_limit_exceeded), else null. */
  scope: ScopeRef | null;
  /** For rate_limited: milliseconds until the customer's next preflight can pass its rate limit; else null. */
  retryAfterMs: number | null;
  /** With a priced usageEstimate: the output tokens the hold covers (fewer than asked when partial). */
  maxOutputTokens: number | null;
  /** With a priced usageEstimate: how it was priced. */
  estimatePricing: Pricing | null;
  /** True only when the check was skipped: the service was unavailable and onUnavailable is 'allow'. */
  unchecked: boolean;
  raw: Record<string, unknown>;
}

export interface RecordOptions {
  agentId: string;
  /** Required unless success is false or usage is given (beside usage, charged only if it cannot be priced). */
  units?: UnitsInput;
  customerId?: string;
  reservationId?: string;
  /** Default true; false releases the hold instead of charging. */
  success?: boolean;
  taskRef?: string;
  idempotencyKey?: string;
  metadata?: Record<string, unknown>;
  /** The run's scope when the record settles no hold (a hold keeps its preflight's). */
  scope?: Scope;
  /** Instead of units: the model usage to charge at the customer's price list. */
  usage?: UsageReport;
}

/** What one credit grant paid of a charge. */
export interface GrantDraw {
  grantId: string;
  units: Units;
}

export interface RecordResult {
  status: 'recorded' | 'released' | 'duplicate' | string;
  eventId: string | null;
  reservationId: string | null;
  chargedUnits: Units | null;
  releasedUnits: Units | null;
  overageUnits: Units | null;
  /** Negative when the customer is in its overdraft. */
  remainingUnits: SignedUnits | null;
  /** Nothing is left to approve, the overdraft included. */
  exhausted: boolean;
  /** What credit grants paid of the charge; empty when the allowance paid it all. */
  fundedBy: GrantDraw[];
  /** How usage was priced; null for a record of units or usage that could not be priced. */
  pricing: Pricing | null;
  /** Why usage could not be priced (it was charged units, else the hold); null otherwise. */
  unpriced: string | null;
  raw: Record<string, unknown>;
}

export interface ReleaseOptions {
  reservationId: string;
  customerId?: string;
  idempotencyKey?: string;
}

export interface ReleaseResult {
  status: string;
  releasedUnits: Units | null;
  remainingUnits: SignedUnits | null;
  raw: Record<string, unknown>;
}

export interface ExtendOptions {
  reservationId: string;
  ttl: string | number;
  customerId?: string;
  idempotencyKey?: string;
}

export interface ExtendResult {
  reservationId: string;
  expiresAt: string;
  raw: Record<string, unknown>;
}

export interface Budget {
  customerId: string;
  /** Includes this period's top-ups. */
  limitUnits: Units;
  topUpUnits: Units;
  usedUnits: Units;
  reservedUnits: Units;
  remainingUnits: SignedUnits;
  isBlocked: boolean;
  period: 'day' | 'week' | 'month' | 'none' | string;
  periodEnd: string | null;
  /** What the credit grants usable now have left (in remainingUnits). */
  grantsRemainingUnits: Units;
  /** The budget's overdraft; null without one. */
  overdraftUnits: Units | null;
  raw: Record<string, unknown>;
}

export interface AgentStatus {
  used: Units;
  reserved: Units;
  limit: Units | null;
}

/** One open credit grant, as status lists them (in draw-down order). */
export interface GrantStatus {
  grantId: string;
  units: Units;
  remaining: Units;
  /** Lower is drawn first. */
  priority: number;
  /** purchase, promo, allowance, rollover (written by the ledger)... */
  source: string;
  effectiveAt: string | null;
  /** null: never expires. */
  expiresAt: string | null;
}

/** One limited scope value's position in its period. */
export interface ScopeStatus {
  dimension: string;
  value: string;
  limit: Units;
  period: 'day' | 'week' | 'month' | 'none' | string;
  periodStart: string | null;
  used: Units;
  reserved: Units;
  /** Negative when usage went past the limit. */
  remaining: SignedUnits;
}

export interface Status {
  customerId: string;
  /**
   * Excludes top-ups; remaining = limit + topUps - (used - grantsUsed)
   * + grantsRemaining - reserved, negative in overdraft.
   */
  limit: Units;
  topUps: Units;
  used: Units;
  reserved: Units;
  remaining: SignedUnits;
  period: string;
  periodStart: string | null;
  periodEnd: string | null;
  openReservations: number;
  /** remaining + overdraft is spent. */
  exhausted: boolean;
  agents: Record<string, AgentStatus>;
  /** Open credit grants, in draw-down order. */
  grants: GrantStatus[];
  /** What the grants usable now have left (included in remaining). */
  grantsRemaining: Units;
  /** The part of used that grants funded this period. */
  grantsUsed: Units;
  /** The limited scope values, by dimension then value. */
  scopes: ScopeStatus[];
  /** null when the budget has none. */
  overdraft: Units | null;
  /** 'all' or a cap; null for no rollover. */
  rollover: 'all' | Units | null;
  /** null: no cap. */
  maxConcurrentRuns: number | null;
  maxConcurrentRunsPerAgent: number | null;
  /** The budget's own preflight rate limit; null: the server's default. */
  rateLimit: RateLimit | null;
  /** The price list the budget names; null: the list named "default". */
  priceList: string | null;
  /** Records whose usage could not be priced, ever. */
  unpricedRecords: number;
  raw: Record<string, unknown>;
}

/** A customer's preflight rate limit: perSecond on average, burst at once (perSecond '0': no limit). */
export interface RateLimit {
  perSecond: Units;
  burst: number;
}

export interface EventsPage {
  customerId: string;
  /** Oldest first, each as stored in the log; amounts are strings. */
  events: Array<Record<string, any>>;
  scannedCommits: number;
  lastSeq: number;
  /** The scan stopped at its bound; older events may exist. */
  truncated: boolean;
  raw: Record<string, unknown>;
}

export interface SetBudgetOptions {
  customerId: string;
  limitUnits: UnitsInput;
  period: 'day' | 'week' | 'month' | 'none';
  thresholds?: UnitsInput[];
  upgradeUrl?: string;
  agentLimits?: Record<string, UnitsInput>;
  idempotencyKey?: string;
  /** What of a period's unused allowance becomes a grant in the next: 'none' (default), 'all' or a cap. */
  rollover?: 'none' | 'all' | UnitsInput;
  /** Approvals may go this many units below zero. */
  overdraft?: UnitsInput;
  scopeLimits?: ScopeLimit[];
  /** The customer's open reservations at most (0: no cap). */
  maxConcurrentRuns?: number;
  /** Each agent's open reservations at most (0: no cap). */
  maxConcurrentRunsPerAgent?: number;
  /** The customer's own preflight rate limit (perSecond 0.001 to 100000, burst 1 to 100000; perSecond 0 without burst: no limit); left out: the server's default. */
  rateLimit?: { perSecond: UnitsInput; burst?: number };
  /** The price list the customer's usage is priced with (set already); default: the list named "default". */
  priceList?: string;
}

/** A budget's cap on one scope value, e.g. { dimension: 'team', value: 'research', limit: 500 }. */
export interface ScopeLimit {
  dimension: string;
  value: string;
  limit: UnitsInput;
  /** Default: the budget's period. */
  period?: 'day' | 'week' | 'month' | 'none';
}

export interface TopUpOptions {
  customerId: string;
  units: UnitsInput;
  note?: string;
  idempotencyKey?: string;
}

export interface GrantOptions {
  /** Default: the key's customer if bound, else "default". */
  customerId?: string;
  units: UnitsInput;
  /** Default: never. */
  expiresAt?: Date | string;
  /** Default: now. */
  effectiveAt?: Date | string;
  /** 0..1000000, lower drawn first; default 100. */
  priority?: number;
  /** At most 32 bytes; default "purchase". */
  source?: string;
  note?: string;
  idempotencyKey?: string;
}

export interface GrantResult {
  grantId: string;
  units: Units;
  priority: number;
  source: string;
  effectiveAt: string | null;
  /** null: never expires. */
  expiresAt: string | null;
  /** The customer's remaining after the grant. */
  remainingUnits: SignedUnits;
  raw: Record<string, unknown>;
}

export interface GateOptions<T> {
  agentId: string;
  customerId?: string;
  /** Default 1. */
  estimatedUnits?: UnitsInput;
  taskRef?: string;
  ttl?: string | number;
  /** Units the run used, from fn's result (when fn returns no Usage). */
  unitsFrom?: (result: T) => UnitsInput;
  scope?: Scope;
  /** Accept a partial hold; fn reads it in preflight.reservedUnits. */
  minUnits?: UnitsInput;
}

export interface GateContext {
  reservationId: string;
  preflight: PreflightResult;
}

export declare class AgentBillClient {
  constructor(options?: ClientOptions);
  readonly apiKey: string;
  readonly baseUrl: string;
  timeoutMs: number;
  maxRetries: number;
  readonly onUnavailable: OnUnavailable;
  /** Preflights approved unchecked under onUnavailable 'allow'. */
  readonly skippedChecks: number;
  preflight(options: PreflightOptions): Promise<PreflightResult>;
  record(options: RecordOptions): Promise<RecordResult>;
  release(options: ReleaseOptions): Promise<ReleaseResult>;
  extend(options: ExtendOptions): Promise<ExtendResult>;
  status(customerId: string | { customerId: string }): Promise<Status>;
  budget(options?: { customerId?: string }): Promise<Budget>;
  events(customerId: string, options?: { limit?: number }): Promise<EventsPage>;
  setBudget(options: SetBudgetOptions): Promise<Budget>;
  topUp(options: TopUpOptions): Promise<Budget>;
  /** Grants credits that outlive the period until used up or expired. Admin keys only. */
  grant(options: GrantOptions): Promise<GrantResult>;
  /** Sets a named, versioned price list (an object or its JSON text). Admin keys bound to no customer. */
  setPrices(list: PriceList | string): Promise<PricesResult>;
  /** Every price list set, or one (with its prices) by name. Admin keys bound to no customer. */
  priceLists(options?: { list?: string }): Promise<PriceListsResult>;
  /** Preflight, run fn, record; release if fn throws; RefusedError on refusal. */
  gate<T>(options: GateOptions<T>, fn: (ctx: GateContext) => Promise<T | Usage<T>> | T | Usage<T>): Promise<T>;
  request(method: string, path: string, body?: Record<string, unknown>): Promise<any>;
}

/** Prefix of a webhook signing secret (`agentbill webhooks add` prints it once). */
export declare const WEBHOOK_SECRET_PREFIX: string;
/** How far (ms) a delivery's timestamp may be from this clock (5 minutes). */
export declare const WEBHOOK_TOLERANCE_MS: number;
/** A webhook delivery failed verification. */
export declare class WebhookVerificationError extends Error {
  code: 'invalid_signature';
}
/**
 * Verifies a webhook delivery (Standard Webhooks: webhook-id,
 * webhook-timestamp, webhook-signature v1) and returns its event. Pass the
 * raw body as received. Throws WebhookVerificationError.
 */
export declare function verifyWebhook(
  body: string | Uint8Array,
  headers: Record<string, string | string[] | undefined> | { get(name: string): string | null },
  secret: string,
  options?: { toleranceMs?: number; now?: number },
): any;
/** The webhook-signature value ("v1,<base64>") of one delivery. */
export declare function signWebhook(secret: string, id: string, timestamp: number, body: string | Uint8Array): string;

export default AgentBillClient;
