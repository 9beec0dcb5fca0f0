// generate.mjs writes prices/starter.json, AgentBill's starter price list,
// from the data bundled in @pydantic/genai-prices at the version
// package-lock.json pins (README.md beside this file says how each model is
// chosen, named and priced).
//
//   node generate.mjs [--date YYYY-MM-DD] [--out PATH]
//
// The same package version and date give the same bytes.
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import { calcPrice, findProvider } from '@pydantic/genai-prices';
import { decimalOf, fractionDigits, shift } from './decimal.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkgDir = path.join(here, 'node_modules', '@pydantic', 'genai-prices');

// Bounds of the Go prices package (prices/list.go), checked here so a
// model the Go side would refuse is dropped with its reason instead.
const RATE_FRACTION_DIGITS_MAX = 12; // prices.RateFractionDigitsMax
const FEE_FRACTION_DIGITS_MAX = 18; // events.UnitsFractionDigitsMax
const RATE_MAX = 1_000_000; // prices.RateMax
const ALIASES_MAX = 32; // prices.AliasesMax
const NAME_LEN_MAX = 128; // prices.NameLenMax
// NOTE_MODELS_NAMED_MAX: the note names the models left out for a reason
// when there are this few, so an operator can add them by hand.
const NOTE_MODELS_NAMED_MAX = 6;

// PRICING_TIME_UTC is the time of day, on the generation date, whose prices
// are taken: prices with a start date in force then, and for the few
// models priced by time of day (DeepSeek's in 0.1.8), the rates of 07:00
// UTC, which falls in every such model's dearest window, so the list never
// charges less than the provider does. peakCheck holds a model to that, and
// leaves out one whose prices peak at another time.
export const PRICING_TIME_UTC = '07:00:00Z';

// DAY_MINUTES are the instants peakCheck compares: every minute of the day.
const DAY_MINUTES = 24 * 60;

// peakUsage prices every kind of token at once, to compare a model's
// prices at two instants.
const peakUsage = {
  input_tokens: 1e6, cache_read_tokens: 1e5, cache_write_tokens: 1e5, cache_write_1h_tokens: 5e4,
  cache_write_5m_tokens: 5e4, output_tokens: 1e6, output_reasoning_tokens: 1e5,
};

// hasTimeOfDay reports whether a model's prices change with the time of day.
function hasTimeOfDay(m) {
  return Array.isArray(m.prices) && m.prices.some((c) => c.constraint && (c.constraint.type === 'time_of_date' || 'start_time' in c.constraint));
}

// peakCheck returns why name's prices at timestamp are not its dearest of
// the day (undefined when they are).
function peakCheck(name, providerId, timestamp) {
  const total = (at) => calcPrice(peakUsage, name, { providerId, timestamp: at }).total_price;
  const chosen = total(timestamp);
  const day = Date.UTC(timestamp.getUTCFullYear(), timestamp.getUTCMonth(), timestamp.getUTCDate());
  for (let min = 0; min < DAY_MINUTES; min++) {
    const at = new Date(day + min * 60_000);
    if (total(at) > chosen) return `its time-of-day prices are dearer at ${at.toISOString().slice(11, 19)}Z than at ${PRICING_TIME_UTC}`;
  }
  return undefined;
}

// kindOf maps a genai-prices price key per million tokens to a kind of
// prices.Rates; REQUEST_FEE_KEY is per thousand requests.
const kindOf = {
  input_mtok: 'input',
  cache_read_mtok: 'cache_read',
  cache_write_mtok: 'cache_write',
  cache_write_5m_mtok: 'cache_write_5m',
  cache_write_1h_mtok: 'cache_write_1h',
  output_mtok: 'output',
  output_reasoning_mtok: 'reasoning',
};
const REQUEST_FEE_KEY = 'requests_kcount';
// kindOrder is prices.Kinds: the order rates are written in.
const kindOrder = Object.values(kindOf);

// loadProviders returns the providers bundled in the package. Its API
// exports no list of them, so the data literal is read from dist/index.js
// (the version is pinned) and checked against findProvider, model by model.
export function loadProviders() {
  const src = fs.readFileSync(path.join(pkgDir, 'dist', 'index.js'), 'utf8');
  const head = 'const E = [';
  const tail = '\n], J = {';
  const start = src.indexOf(head);
  const end = src.indexOf(tail);
  if (start !== 0 || end < 0) throw new Error('dist/index.js: the bundled provider data was not found where 0.1.8 keeps it');
  const providers = vm.runInNewContext('(' + src.slice(head.length - 1, end + 2) + ')', {});
  for (const p of providers) {
    const q = findProvider({ providerId: p.id });
    if (!q || q.id !== p.id || JSON.stringify(q.models.map((m) => m.id)) !== JSON.stringify(p.models.map((m) => m.id))) {
      throw new Error(`provider ${p.id}: the data read from dist/index.js differs from findProvider's`);
    }
  }
  return providers;
}

// equalsNames lists the exact names a match rule accepts: the `equals`
// leaves reachable through `or`. Other rules (starts_with, contains, regex,
// and) accept names that cannot be listed.
function equalsNames(match) {
  if ('equals' in match) return [match.equals];
  if ('or' in match) return match.or.flatMap(equalsNames);
  return [];
}

const probe = { input_tokens: 1, output_tokens: 1 };

// resolves reports whether the package prices name (with the provider,
// or without one when providerId is undefined) as model m of provider p.
function resolves(name, p, m, providerId, timestamp) {
  const r = calcPrice(probe, name, { providerId, timestamp });
  return r !== null && r.provider.id === p.id && r.model.id === m.id;
}

// convertPrices turns a genai-prices price object into the rates, tiers
// and request fee of a list model, and names the keys it leaves out.
export function convertPrices(prices) {
  const rates = {};
  const tiersByStart = new Map();
  const dropped = [];
  let fee;
  const problems = [];
  const rate = (key, n) => {
    const s = decimalOf(n);
    if (fractionDigits(s) > RATE_FRACTION_DIGITS_MAX) problems.push(`${key} ${s} has more than ${RATE_FRACTION_DIGITS_MAX} fractional digits`);
    if (n > RATE_MAX) problems.push(`${key} ${s} is above ${RATE_MAX}`);
    return s;
  };
  for (const [key, value] of Object.entries(prices)) {
    if (value === undefined) continue;
    if (key === REQUEST_FEE_KEY) {
      if (typeof value !== 'number') { problems.push(`${key} is tiered`); continue; }
      fee = shift(decimalOf(value), -3);
      if (fractionDigits(fee) > FEE_FRACTION_DIGITS_MAX || value > RATE_MAX * 1000) problems.push(`${key} ${value} is out of bounds`);
      continue;
    }
    const kind = kindOf[key];
    if (!kind) { dropped.push(key); continue; }
    if (typeof value === 'number') { rates[kind] = rate(key, value); continue; }
    rates[kind] = rate(key, value.base);
    for (const t of value.tiers) {
      if (!tiersByStart.has(t.start)) tiersByStart.set(t.start, {});
      tiersByStart.get(t.start)[kind] = rate(key, t.price);
    }
  }
  const starts = [...tiersByStart.keys()].sort((a, b) => a - b);
  if (starts.some((s) => s <= 0)) problems.push('a tier starts at 0 input tokens');
  const tiers = starts.map((s) => ({ above_input_tokens: s, rates: ordered(tiersByStart.get(s)) }));
  return { rates: ordered(rates), tiers, fee, dropped, problems };
}

// ordered writes rates in the order of prices.Kinds.
function ordered(rates) {
  const out = {};
  for (const k of kindOrder) if (k in rates) out[k] = rates[k];
  return out;
}

// candidates lists, for every provider's model, the names the package
// resolves to it (with its provider) and its prices in force at timestamp.
function candidates(providers, timestamp, drops) {
  const out = [];
  for (const p of providers) {
    for (const m of p.models) {
      const drop = (why) => drops.push({ provider: p.id, model: m.id, why });
      const seen = new Set();
      const names = [];
      for (const name of [m.id, ...equalsNames(m.match)]) {
        const key = name.trim().toLowerCase();
        if (seen.has(key)) continue;
        seen.add(key);
        if (name.length > NAME_LEN_MAX || /[\x00-\x1f\x7f]/.test(name)) continue;
        try {
          if (resolves(name, p, m, p.id, timestamp)) names.push(name);
        } catch { /* calcPrice refuses the model's prices: below */ }
      }
      if (names.length === 0) { drop('no name of it resolves to it (a pattern match, or an earlier model takes the name)'); continue; }
      let priced;
      try {
        priced = calcPrice(probe, names[0], { providerId: p.id, timestamp });
      } catch (err) {
        drop(`calcPrice throws: ${err.message}`);
        continue;
      }
      const offPeak = hasTimeOfDay(m) ? peakCheck(names[0], p.id, timestamp) : undefined;
      if (offPeak) { drop(offPeak); continue; }
      const c = convertPrices(priced.model_price);
      if (c.problems.length) { drop(c.problems.join('; ')); continue; }
      if (Object.keys(c.rates).length === 0 && c.fee === undefined) {
        drop(c.dropped.length ? `no token or request price (only ${c.dropped.join(', ')})` : 'no price at all');
        continue;
      }
      out.push({ provider: p.id, model: m, names, ...c });
    }
  }
  return out;
}

// assignNames gives each name to one candidate: the one calcPrice picks
// for the name without a provider, else the first in the package's
// provider order. A candidate left with no name is dropped.
function assignNames(cands, timestamp, drops) {
  const byName = new Map();
  for (const c of cands) {
    for (const n of c.names) {
      const key = n.trim().toLowerCase();
      if (!byName.has(key)) byName.set(key, []);
      byName.get(key).push(c);
    }
  }
  const owner = new Map();
  for (const [key, cs] of byName) {
    let won = cs[0];
    if (cs.length > 1) {
      const pick = cs.find((c) => {
        try { return resolves(key, { id: c.provider }, c.model, undefined, timestamp); } catch { return false; }
      });
      if (pick) won = pick;
    }
    owner.set(key, won);
  }
  const kept = [];
  for (const c of cands) {
    const names = c.names.filter((n) => owner.get(n.trim().toLowerCase()) === c);
    if (names.length === 0) {
      drops.push({ provider: c.provider, model: c.model.id, why: `its names are ${owner.get(c.names[0].trim().toLowerCase()).provider}'s` });
      continue;
    }
    kept.push({ ...c, names });
  }
  return kept;
}

// toModel writes a candidate as a prices.Model.
function toModel(c) {
  const [id, ...aliases] = c.names;
  const m = { id, provider: c.provider };
  if (aliases.length > ALIASES_MAX) throw new Error(`${c.provider}/${id}: ${aliases.length} aliases, the Go side takes at most ${ALIASES_MAX}`);
  const sorted = aliases.sort((a, b) => cmp(a.toLowerCase(), b.toLowerCase()) || cmp(a, b));
  if (sorted.length) m.aliases = sorted;
  m.rates = c.rates;
  if (c.tiers.length) m.tiers = c.tiers;
  if (c.fee !== undefined) m.request_fee = c.fee;
  return m;
}

const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

// note summarises where the list came from and what it leaves out.
function note(version, date, total, models, kept, drops) {
  const droppedKeys = new Map();
  for (const c of kept) for (const k of c.dropped) droppedKeys.set(k, (droppedKeys.get(k) ?? 0) + 1);
  const keys = [...droppedKeys].sort((a, b) => cmp(a[0], b[0])).map(([k, n]) => `${k} (${n})`).join(', ');
  const reasons = new Map();
  for (const d of drops) {
    const why = d.why.startsWith('its names are ') ? 'its names are another provider\'s' : d.why;
    if (!reasons.has(why)) reasons.set(why, []);
    reasons.get(why).push(`${d.provider}/${d.model}`);
  }
  const whys = [...reasons].sort((a, b) => b[1].length - a[1].length || cmp(a[0], b[0]))
    .map(([w, ms]) => `${ms.length}: ${w}` + (ms.length <= NOTE_MODELS_NAMED_MAX ? ` [${ms.sort(cmp).join(', ')}]` : '')).join('; ');
  return `List prices in USD per million tokens (request_fee per request), generated on ${date} by scripts/prices/generate.mjs ` +
    `from @pydantic/genai-prices ${version}: the prices in force at ${date}T${PRICING_TIME_UTC}. ` +
    `${models} of the package's ${total} models; each name belongs to one provider (the one the package picks for the name alone, else the first in its provider order). ` +
    `Left out: ${whys}. Rates not carried (the model's token rates are kept): ${keys || 'none'}. Operators own their list: check and edit it before relying on it.`;
}

function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
  const date = opt('--date', new Date().toISOString().slice(0, 10));
  const out = opt('--out', path.join(here, '..', '..', 'prices', 'starter.json'));
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new Error(`--date ${date}: want YYYY-MM-DD`);
  const timestamp = new Date(`${date}T${PRICING_TIME_UTC}`);
  const version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;

  const providers = loadProviders();
  const total = providers.reduce((n, p) => n + p.models.length, 0);
  const drops = [];
  const kept = assignNames(candidates(providers, timestamp, drops), timestamp, drops);
  const models = kept.map(toModel).sort((a, b) => cmp(a.id.toLowerCase(), b.id.toLowerCase()) || cmp(a.provider, b.provider));
  const list = {
    list: 'default',
    version: `genai-prices-${version}+${date}`,
    currency: 'USD',
    note: note(version, date, total, models.length, kept, drops),
  };
  const head = JSON.stringify(list, null, 2).replace(/\n}$/, ',\n  "models": [\n');
  const body = models.map((m) => '    ' + JSON.stringify(m)).join(',\n');
  fs.writeFileSync(out, head + body + '\n  ]\n}\n');
  console.error(`wrote ${out}: ${models.length} of ${total} models (${drops.length} left out)`);
  if (process.env.GENERATE_VERBOSE) for (const d of drops) console.error(`  left out ${d.provider}/${d.model}: ${d.why}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
