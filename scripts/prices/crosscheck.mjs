// crosscheck.mjs prices every model of prices/starter.json with the real
// calcPrice of the pinned @pydantic/genai-prices, over several usage
// shapes, and prints the cases as JSON for prices/crosscheck_test.go, which
// prices them again with the Go prices package and compares.
//
//   node crosscheck.mjs [--list PATH]
//
// Every model is priced by its id over every shape, and by each alias over
// the plain shape. Output: {"package_version", "timestamp", "cases":
// [{shape, model, provider, usage (prices.Usage's field names), total
// (calcPrice's float, as String(total_price))}]}. A model calcPrice cannot
// price is an error.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { calcPrice } from '@pydantic/genai-prices';
import { PRICING_TIME_UTC } from './generate.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

// shapes are the usages every model is priced with (prices.Usage's names).
// Counts stay small enough that calcPrice's float total keeps every digit
// of the exact total (under 15 significant digits with the list's rates).
const shapes = [
  { name: 'plain', input_tokens: 1200, output_tokens: 400 },
  { name: 'cache reads', input_tokens: 5000, cache_read_tokens: 3000, output_tokens: 200 },
  { name: 'cache writes', input_tokens: 8000, cache_write_tokens: 3000, output_tokens: 100 },
  { name: 'cache writes 5m and 1h', input_tokens: 10000, cache_read_tokens: 1000, cache_write_tokens: 6000, cache_write_1h_tokens: 2500, output_tokens: 500 },
  { name: 'reasoning', input_tokens: 2000, output_tokens: 3000, reasoning_tokens: 2500 },
  { name: 'zero output', input_tokens: 777, output_tokens: 0 },
  { name: 'one token each', input_tokens: 1, output_tokens: 1 },
  { name: 'large', input_tokens: 98765432, cache_read_tokens: 1234567, cache_write_tokens: 7654321, cache_write_1h_tokens: 54321, output_tokens: 3456789, reasoning_tokens: 123456 },
];

// tierShapes are the usages at and just above a long-context threshold.
function tierShapes(above) {
  const at = { input_tokens: above, cache_read_tokens: 1000, cache_write_tokens: 2000, cache_write_1h_tokens: 500, output_tokens: 700, reasoning_tokens: 100 };
  return [
    { name: `at tier ${above}`, ...at },
    { name: `above tier ${above}`, ...at, input_tokens: above + 1 },
  ];
}

// theirs turns prices.Usage counts into genai-prices usage keys: the
// 5-minute cache writes are the writes that are not 1-hour ones.
function theirs(u) {
  const cw = u.cache_write_tokens ?? 0;
  const cw1h = u.cache_write_1h_tokens ?? 0;
  return {
    input_tokens: u.input_tokens,
    output_tokens: u.output_tokens,
    cache_read_tokens: u.cache_read_tokens ?? 0,
    cache_write_tokens: cw,
    cache_write_1h_tokens: cw1h,
    cache_write_5m_tokens: cw - cw1h,
    output_reasoning_tokens: u.reasoning_tokens ?? 0,
  };
}

function main() {
  const args = process.argv.slice(2);
  const i = args.indexOf('--list');
  const listPath = i >= 0 ? args[i + 1] : path.join(here, '..', '..', 'prices', 'starter.json');
  const list = JSON.parse(fs.readFileSync(listPath, 'utf8'));
  const pkg = JSON.parse(fs.readFileSync(path.join(here, 'node_modules', '@pydantic', 'genai-prices', 'package.json'), 'utf8'));
  const v = /^genai-prices-(.+)\+(\d{4}-\d{2}-\d{2})$/.exec(list.version);
  if (!v) throw new Error(`${listPath}: version ${list.version} is not genai-prices-VERSION+DATE`);
  if (v[1] !== pkg.version) throw new Error(`${listPath} was generated from genai-prices ${v[1]}, but ${pkg.version} is installed: run npm ci`);
  const timestamp = new Date(`${v[2]}T${PRICING_TIME_UTC}`);

  const cases = [];
  const failures = [];
  for (const m of list.models) {
    const usages = [...shapes, ...(m.tiers ?? []).flatMap((t) => tierShapes(t.above_input_tokens))];
    // Each alias once, with the plain shape: Lookup by alias must find the
    // model calcPrice finds by that name.
    const named = [...usages.map((u) => [m.id, u]), ...(m.aliases ?? []).map((a) => [a, { ...shapes[0], name: `alias ${a}` }])];
    for (const [model, { name, ...usage }] of named) {
      let r;
      try {
        r = calcPrice(theirs(usage), model, { providerId: m.provider, timestamp });
      } catch (err) {
        failures.push(`${m.provider}/${model} (${name}): calcPrice throws: ${err.message}`);
        continue;
      }
      if (r === null) { failures.push(`${m.provider}/${model} (${name}): calcPrice returns null`); continue; }
      cases.push({ shape: name, model, provider: m.provider, usage, total: String(r.total_price) });
    }
  }
  if (failures.length) {
    console.error(failures.join('\n'));
    process.exit(1);
  }
  process.stdout.write(JSON.stringify({ package_version: pkg.version, timestamp: timestamp.toISOString(), cases }) + '\n');
  console.error(`crosscheck: ${cases.length} cases over ${list.models.length} models, priced by calcPrice of genai-prices ${pkg.version} at ${timestamp.toISOString()}`);
}

main();
