// Verify AgentBill webhook deliveries (the Standard Webhooks format), with
// node:crypto only. `agentbill serve` POSTs each alert with `webhook-id`
// (the event's ID, the same on every retry: deduplicate on it),
// `webhook-timestamp` (Unix seconds) and `webhook-signature`
// (`v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}`, keyed with the
// bytes after `whsec_` in the secret `agentbill webhooks add` printed).

import { createHmac, timingSafeEqual } from 'node:crypto';

export const WEBHOOK_SECRET_PREFIX = 'whsec_';
/** How far (ms) a delivery's timestamp may be from this clock: replays outside it are refused. */
export const WEBHOOK_TOLERANCE_MS = 5 * 60 * 1000;

/** A delivery failed verification: answer it with a 4xx and ignore it. */
export class WebhookVerificationError extends Error {
  constructor(message) {
    super(message);
    this.name = 'WebhookVerificationError';
    this.code = 'invalid_signature';
  }
}

function header(headers, name) {
  if (headers && typeof headers.get === 'function') return headers.get(name) ?? undefined;
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

function secretKey(secret) {
  if (typeof secret !== 'string' || !secret.startsWith(WEBHOOK_SECRET_PREFIX)) {
    throw new WebhookVerificationError(`webhook secret must start with ${WEBHOOK_SECRET_PREFIX}`);
  }
  const b64 = secret.slice(WEBHOOK_SECRET_PREFIX.length);
  const key = Buffer.from(b64, 'base64');
  if (key.length === 0 || key.toString('base64') !== b64) {
    throw new WebhookVerificationError(`webhook secret is not ${WEBHOOK_SECRET_PREFIX} and base64`);
  }
  return key;
}

/** Returns the `webhook-signature` value for one delivery. */
export function signWebhook(secret, id, timestamp, body) {
  const mac = createHmac('sha256', secretKey(secret));
  mac.update(`${id}.${timestamp}.`);
  mac.update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
  return `v1,${mac.digest('base64')}`;
}

/**
 * Checks a delivery and returns its event (the body, parsed). `body` is the
 * raw body (string, Buffer or Uint8Array) exactly as received; `headers` a
 * plain object (any case) or a fetch `Headers`. Throws
 * WebhookVerificationError on a missing header, a timestamp more than
 * `toleranceMs` from `now` (ms), or no matching v1 signature.
 */
export function verifyWebhook(body, headers, secret, { toleranceMs = WEBHOOK_TOLERANCE_MS, now = Date.now() } = {}) {
  const id = header(headers, 'webhook-id');
  const tsText = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !tsText || !signatures) {
    throw new WebhookVerificationError('missing webhook-id, webhook-timestamp or webhook-signature header');
  }
  if (!/^\d+$/.test(tsText)) throw new WebhookVerificationError(`webhook-timestamp ${JSON.stringify(tsText.slice(0, 32))} is not Unix seconds`);
  const ts = Number(tsText);
  if (Math.abs(now - ts * 1000) > toleranceMs) {
    throw new WebhookVerificationError(`webhook-timestamp is ${Math.round(now / 1000 - ts)}s from now, outside the tolerance of ${toleranceMs / 1000}s`);
  }
  const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
  const want = Buffer.from(signWebhook(secret, id, ts, raw));
  for (const candidate of signatures.split(' ')) {
    const got = Buffer.from(candidate);
    if (got.length === want.length && timingSafeEqual(got, want)) {
      try {
        return JSON.parse(raw.toString('utf8'));
      } catch (err) {
        throw new WebhookVerificationError(`signed body is not JSON: ${err.message}`);
      }
    }
  }
  throw new WebhookVerificationError('no v1 signature matches: wrong secret, or the body was changed');
}
