// AgentBill dashboard. Plain DOM, no framework, no external requests.
// Amounts arrive as exact decimal strings and are shown as given; Number()
// is used only for bar widths, chart coordinates and sorting.
'use strict';

const TABLE_REFRESH_MS = 3000;   // the table re-reads the follower this often
const HEALTH_REFRESH_MS = 5000;  // and /readyz this often
const FEED_ITEMS_MAX = 100;      // alerts kept in the feed list
const SEARCH_DEBOUNCE_MS = 200;
const HISTORY_ROWS_SHOWN = 500;  // history table rows drawn (the chart uses all)
const SVG = 'http://www.w3.org/2000/svg';
// LEVELS names the levels the server computes, most urgent first.
const LEVELS = [['exhausted', 'exhausted'], ['critical', 'at 90% or more'], ['warn', 'at 75% or more'], ['ok', 'below 75%']];

const $ = (sel) => document.querySelector(sel);
const state = { rows: [], sort: { key: 'usage', dir: 'desc' }, query: '', detail: null, pending: null };

// ---------- helpers ----------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function api(path) {
  const res = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (res.status === 401) { location.reload(); throw new Error('signed out'); }
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : res.statusText);
  return body;
}

const num = (s) => Number(s) || 0;

// usage returns the bar geometry of a row: used and reserved as percent of
// the limit (clamped to the bar), and the committed share as a label.
function usage(r) {
  const limit = num(r.limit), used = num(r.used), reserved = num(r.reserved);
  if (limit <= 0) return { u: used > 0 ? 100 : 0, r: 0, pct: used + reserved > 0 ? 'over' : '—' };
  const u = Math.min(used / limit, 1) * 100;
  const rv = Math.min(reserved / limit * 100, 100 - u);
  return { u, r: rv, pct: `${Math.round((used + reserved) / limit * 100)}%` };
}

function bar(r) {
  const g = usage(r);
  const b = el('div', { class: 'bar', title: `used ${r.used} + reserved ${r.reserved} of ${r.limit}` },
    el('span', { class: 'u' }), el('span', { class: 'r' }));
  b.children[0].style.width = `${g.u}%`;
  b.children[1].style.width = `${g.r}%`;
  return el('div', { class: `lvl-${r.level}` }, b, el('div', { class: 'pct', text: g.pct }));
}

const fmtDate = (s) => s ? new Date(s).toISOString().slice(0, 10) : '—';
const fmtTime = (s) => new Date(s).toISOString().replace('T', ' ').slice(0, 19);
const customerHref = (id) => `#/customer/${encodeURIComponent(id)}`;

function ago(s) {
  const d = (Date.now() - new Date(s).getTime()) / 1000;
  if (d < 5) return 'just now';
  if (d < 60) return `${Math.floor(d)}s ago`;
  if (d < 3600) return `${Math.floor(d / 60)}m ago`;
  if (d < 86400) return `${Math.floor(d / 3600)}h ago`;
  return fmtDate(s);
}

// ---------- customer table ----------

const sorters = {
  id: (a, b) => a.id.localeCompare(b.id),
  usage: (a, b) => b.rank - a.rank, // the server's order: most urgent first
  used: (a, b) => num(a.used) - num(b.used),
  reserved: (a, b) => num(a.reserved) - num(b.reserved),
  remaining: (a, b) => num(a.remaining) - num(b.remaining),
  limit: (a, b) => num(a.limit) - num(b.limit),
  open_reservations: (a, b) => a.open_reservations - b.open_reservations,
  period_end: (a, b) => (a.period_end || '9').localeCompare(b.period_end || '9'),
};

async function loadTable() {
  const q = state.query ? `?q=${encodeURIComponent(state.query)}` : '';
  const t = await api(`/ui/api/customers${q}`);
  state.rows = t.rows.map((r, i) => ({ ...r, rank: t.rows.length - i }));
  renderTable(t);
}

function renderTable(t) {
  const { key, dir } = state.sort;
  const rows = [...state.rows].sort(sorters[key]);
  if (dir === 'asc' && key === 'usage') rows.reverse();
  if (dir === 'desc' && key !== 'usage') rows.reverse();
  const body = $('#customers tbody');
  body.replaceChildren(...rows.map((r) => {
    const tr = el('tr', { 'data-id': r.id, tabIndex: 0, class: `row lvl-${r.level}` },
      el('td', { class: 'cid', text: r.id, title: r.id }),
      el('td', {}, bar(r)),
      el('td', { class: 'num c-used', text: r.used }),
      el('td', { class: 'num c-reserved', text: r.reserved }),
      el('td', { class: `num c-remaining lvl-${r.level}`, text: r.remaining }),
      el('td', { class: 'num c-limit', text: r.limit }),
      el('td', { class: 'num c-open', text: String(r.open_reservations) }),
      el('td', { class: 'c-end', text: r.period === 'none' ? 'never' : fmtDate(r.period_end) }));
    tr.addEventListener('click', () => { location.hash = customerHref(r.id); });
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') location.hash = customerHref(r.id); });
    return tr;
  }));
  for (const th of document.querySelectorAll('#customers th')) {
    th.setAttribute('aria-sort', th.dataset.key === key ? (dir === 'asc' ? 'ascending' : 'descending') : 'none');
  }
  const empty = $('#empty');
  if (t) {
    $('#asof').textContent = t.ready ? `log seq ${t.seq}` : 'reading the log…';
    const shown = t.truncated ? `the ${t.rows.length} most urgent of ${t.matched}` : `${t.matched}`;
    $('#counts').textContent = state.query
      ? `${shown} matching “${state.query}”, of ${t.total} customers`
      : `${shown} customer${t.matched === 1 ? '' : 's'}, most urgent first`;
    $('#levels').replaceChildren(...LEVELS.filter(([k]) => t.levels[k]).map(([k, name]) =>
      el('span', { class: `chip lvl-${k}`, text: `${t.levels[k]} ${name}` })));
    empty.hidden = rows.length > 0;
    empty.textContent = !t.ready ? 'Reading the log…' : state.query ? 'No customer matches.' : 'No customers yet.';
  }
}

function setupTable() {
  for (const th of document.querySelectorAll('#customers th')) {
    th.addEventListener('click', () => {
      const k = th.dataset.key;
      state.sort = { key: k, dir: state.sort.key === k && state.sort.dir === 'desc' ? 'asc' : 'desc' };
      renderTable();
    });
  }
  let timer;
  $('#search').addEventListener('input', (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.query = e.target.value.trim(); refresh(); }, SEARCH_DEBOUNCE_MS);
  });
}

// ---------- customer page ----------

// percent writes a threshold, an exact decimal fraction of the limit such
// as "0.8" or "0.075", as a percentage ("80%", "7.5%") by moving its decimal
// point, so no floating point rounding shows.
function percent(fraction) {
  const [whole, frac = ''] = fraction.split('.');
  const digits = frac + '00';
  const int = (whole + digits.slice(0, 2)).replace(/^0+(?=\d)/, '');
  const rest = digits.slice(2).replace(/0+$/, '');
  return `${int}${rest ? '.' + rest : ''}%`;
}

function stat(k, v, cls) {
  return el('div', { class: `stat ${cls || ''}` }, el('div', { class: 'k', text: k }), el('div', { class: 'v', text: v }));
}

async function loadDetail(id) {
  const p = await api(`/ui/api/customers/${encodeURIComponent(id)}`);
  if (state.detail !== id) return; // navigated away meanwhile
  const c = p.customer;
  $('#d-title').textContent = c.id;
  $('#d-sub').textContent = c.period === 'none'
    ? `no period · since ${fmtDate(p.period_start)} · log seq ${p.seq}`
    : `${c.period} from ${fmtDate(p.period_start)} to ${fmtDate(c.period_end)} · log seq ${p.seq}`;
  const lvl = $('#d-level');
  lvl.className = `badge lvl-${c.level}`;
  lvl.textContent = c.level === 'ok' ? 'healthy' : c.level;
  $('#d-stats').replaceChildren(
    stat('Limit', c.limit), stat('Used', c.used), stat('Reserved', c.reserved),
    stat('Remaining', c.remaining, `lvl-${c.level}`), stat('Open holds', String(c.open_reservations)),
    stat('Thresholds', p.thresholds.length ? p.thresholds.map(percent).join(', ') : '—'),
    ...ruleStats(p));
  $('#d-chart').replaceChildren(chart(p));
  renderRules(p);
  const agents = Object.entries(p.agents).sort((a, b) => a[0].localeCompare(b[0]));
  $('#d-agents tbody').replaceChildren(...(agents.length ? agents.map(([a, s]) => el('tr', {},
    el('td', { text: a }), el('td', { class: 'num', text: s.used }), el('td', { class: 'num', text: s.reserved }),
    el('td', { class: 'num', text: s.limit || '—' }))) : [el('tr', {}, el('td', { colSpan: 4, class: 'detail', text: 'No agent has run this period.' }))]));
  const hist = p.history.slice(-HISTORY_ROWS_SHOWN).reverse();
  $('#d-hist-note').textContent = `${p.history.length} event${p.history.length === 1 ? '' : 's'} this period${p.truncated ? ' (the newest; older ones were cut)' : ''}`;
  $('#d-history tbody').replaceChildren(...hist.map((h) => el('tr', { 'data-type': h.type },
    el('td', { text: fmtTime(h.at) }), el('td', { text: h.type }), el('td', { text: h.agent || '—' }),
    el('td', { class: 'num', text: h.units || '—' }), el('td', { class: 'detail', text: h.reason || '' }),
    el('td', { class: 'num', text: h.used }), el('td', { class: 'num', text: h.reserved }),
    el('td', { class: 'num', text: h.remaining }))));
}

// ruleStats are the figures of the budget's rules that are set: credit
// grants, overdraft, rollover and run caps. A budget without them shows none.
function ruleStats(p) {
  const out = [];
  if (p.grants.length || p.grants_remaining !== '0') out.push(stat('Grants left', p.grants_remaining));
  if (p.overdraft) out.push(stat('Overdraft', p.overdraft));
  if (p.rollover) out.push(stat('Rollover', p.rollover === 'all' ? 'all unused' : `up to ${p.rollover}`));
  const caps = [];
  if (p.max_concurrent_runs) caps.push(`${p.max_concurrent_runs} open`);
  if (p.max_concurrent_runs_per_agent) caps.push(`${p.max_concurrent_runs_per_agent} per agent`);
  if (caps.length) out.push(stat('Run caps', caps.join(' · ')));
  if (p.price_list) out.push(stat('Price list', p.price_list));
  if (p.unpriced_records) out.push(stat('Unpriced records', String(p.unpriced_records)));
  const rl = p.rate_limit;
  if (rl) out.push(stat('Rate limit', Number(rl.per_second) === 0 ? 'none' : `${rl.per_second}/s, burst ${rl.burst}`));
  return out;
}

// renderRules fills the grant and scope tables; each shows only when the
// customer has some. Every value is text (el's text), never markup: scope
// values, sources and IDs are whatever an admin typed.
function renderRules(p) {
  $('#d-grants-box').hidden = p.grants.length === 0;
  $('#d-scopes-box').hidden = p.scopes.length === 0;
  $('#d-rules').hidden = p.grants.length === 0 && p.scopes.length === 0;
  $('#d-grants-note').textContent = `${p.grants_remaining} usable now, drawn top to bottom`;
  $('#d-grants tbody').replaceChildren(...p.grants.map((g) => el('tr', { 'data-id': g.id, title: `effective ${fmtTime(g.effective_at)}` },
    el('td', { class: 'cid', text: g.id, title: g.id }),
    el('td', { class: 'num', text: `${g.remaining} / ${g.units}` }),
    el('td', { class: 'num', text: String(g.priority) }),
    el('td', { text: g.source }),
    el('td', { text: g.expires_at ? fmtTime(g.expires_at) : 'never' }))));
  $('#d-scopes tbody').replaceChildren(...p.scopes.map((s) => el('tr', { 'data-dimension': s.dimension, 'data-value': s.value },
    el('td', { text: s.dimension }), el('td', { class: 'cid', text: s.value, title: s.value }),
    el('td', { class: 'num', text: s.used }), el('td', { class: 'num', text: s.reserved }),
    el('td', { class: 'num', text: s.limit }), el('td', { class: `num lvl-${s.level}`, text: s.remaining }),
    el('td', { text: s.period }))));
}

// chart draws used and used + reserved over the period as step lines, the
// limit (which top-ups and budget changes move) and the thresholds.
function chart(p) {
  const W = 760, H = 240, L = 64, R = 16, T = 14, B = 28;
  const now = new Date(p.now).getTime();
  const t0 = new Date(p.period_start).getTime();
  const end = p.customer.period_end ? new Date(p.customer.period_end).getTime() : now;
  const t1 = Math.max(end, t0 + 1);
  const pts = p.history.map((h) => ({ t: new Date(h.at).getTime(), used: num(h.used), committed: num(h.used) + num(h.reserved), limit: num(h.limit), type: h.type }));
  const cur = p.customer;
  const last = { t: Math.min(now, t1), used: num(cur.used), committed: num(cur.used) + num(cur.reserved), limit: num(cur.limit) };
  const all = [...pts, last];
  const yMax = niceCeil(Math.max(1, ...all.map((q) => Math.max(q.limit, q.committed))) * 1.08);
  const x = (t) => L + (Math.min(Math.max(t, t0), t1) - t0) / (t1 - t0) * (W - L - R);
  const y = (v) => T + (1 - v / yMax) * (H - T - B);
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `usage of ${cur.id} over the period` });
  for (let i = 0; i <= 4; i++) {
    const v = yMax * i / 4;
    s.append(svg('line', { class: 'chart-grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    s.append(svg('text', { class: 'chart-axis', x: L - 8, y: y(v) + 4, 'text-anchor': 'end' }, shortNum(v)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + (t1 - t0) * i / 4;
    s.append(svg('text', { class: 'chart-axis', x: x(t), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle' }, fmtDate(new Date(t).toISOString()).slice(5)));
  }
  const step = (key) => {
    let d = '', prev = null;
    for (const q of all) {
      d += prev === null ? `M${x(q.t)},${y(q[key])}` : `H${x(q.t)}V${y(q[key])}`;
      prev = q;
    }
    return d;
  };
  // The limit holds over the whole period: from its start at the first
  // known limit, through each change, to the period's end.
  let limitPath = `M${x(t0)},${y(all[0].limit)}`;
  for (const q of all) limitPath += `H${x(q.t)}V${y(q.limit)}`;
  s.append(svg('path', { class: 'chart-limit', d: `${limitPath}H${x(t1)}` }));
  if (pts.length) {
    const used = step('used');
    s.append(svg('path', { class: 'chart-used-area', d: `${used}V${y(0)}H${x(all[0].t)}Z` }));
    s.append(svg('path', { class: 'chart-committed', d: step('committed') }));
    s.append(svg('path', { class: 'chart-used', d: used }));
  } else {
    s.append(svg('text', { class: 'chart-axis', x: (L + W - R) / 2, y: H / 2, 'text-anchor': 'middle' }, 'no usage this period yet'));
  }
  for (const f of p.thresholds) {
    const v = num(f) * last.limit;
    s.append(svg('line', { class: 'chart-threshold', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
  }
  for (const q of pts.filter((q) => q.type === 'budget_exhausted')) {
    s.append(svg('circle', { class: 'chart-dot', cx: x(q.t), cy: y(q.committed), r: 4 }, undefined));
  }
  if (now < t1) s.append(svg('line', { class: 'chart-now', x1: x(now), x2: x(now), y1: T, y2: H - B }));
  return s;
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function shortNum(v) {
  if (v >= 1e9) return `${+(v / 1e9).toFixed(1)}G`;
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}

// ---------- live feed ----------

function feedItem(a) {
  const who = el('a', { href: customerHref(a.customer_id), text: a.customer_id });
  let kind, body;
  switch (a.type) {
    case 'budget_exhausted':
      kind = 'Budget exhausted';
      body = [who, `: used ${a.used}, reserved ${a.reserved} of ${a.limit}, ${a.remaining} left`, a.reason ? ` (${a.reason})` : ''];
      break;
    case 'threshold_crossed':
      kind = 'Threshold crossed';
      body = [who, ` passed ${percent(a.units)} of ${a.limit} (used ${a.used}, reserved ${a.reserved})`];
      break;
    case 'overdraft_started':
      kind = 'Overdraft started';
      body = [who, a.agent ? ` · ${a.agent}` : '', `: ${a.remaining} left, overdraft ${a.units}`];
      break;
    case 'grant_expired':
      kind = 'Grant expired';
      body = [who, `: ${a.units} unused units forfeited`];
      break;
    default:
      kind = 'Refused';
      body = [who, a.agent ? ` · ${a.agent}` : '', a.units ? ` asked ${a.units}` : '', a.reason ? ` — ${a.reason}` : ''];
  }
  return el('li', { class: `t-${a.type} fresh`, 'data-type': a.type, 'data-customer': a.customer_id, 'data-id': a.event_id },
    el('span', { class: 'dot' }),
    el('div', { class: 'head' }, el('span', { class: 'kind', text: kind }), el('time', { dateTime: a.at, title: fmtTime(a.at), text: ago(a.at) })),
    el('div', { class: 'body' }, ...body));
}

function setupFeed() {
  const list = $('#feed'), st = $('#feed-state');
  const seen = new Set();
  const es = new EventSource('/ui/api/feed');
  es.onopen = () => { st.textContent = 'live'; st.className = 'pill good'; };
  es.onerror = () => { st.textContent = 'reconnecting…'; st.className = 'pill bad'; };
  es.addEventListener('alert', (m) => {
    const a = JSON.parse(m.data);
    if (seen.has(a.event_id)) return; // the recent ones again, after a reconnect
    seen.add(a.event_id);
    list.prepend(feedItem(a));
    while (list.children.length > FEED_ITEMS_MAX) {
      seen.delete(list.lastElementChild.dataset.id);
      list.lastElementChild.remove();
    }
    $('#feed-empty').hidden = true;
    soon(a.customer_id);
  });
  es.addEventListener('dropped', (m) => {
    list.prepend(el('li', { class: 't-dropped' }, el('span', { class: 'dot' }), el('div', { class: 'body', text: `${m.data} alerts were missed while this page was behind` })));
  });
  setInterval(() => { for (const t of list.querySelectorAll('time')) t.textContent = ago(t.dateTime); }, 10000);
}

// soon refreshes the view shortly after an alert, once for a burst.
function soon(customer) {
  if (state.pending) return;
  state.pending = setTimeout(() => {
    state.pending = null;
    if (!state.detail || state.detail === customer) refresh();
  }, 150);
}

// ---------- health, routing ----------

async function health() {
  const pill = $('#health');
  try {
    const res = await fetch('/readyz', { credentials: 'same-origin' });
    const r = await res.json();
    pill.textContent = `${r.role}${r.ready ? '' : ' · not ready'}`;
    pill.className = `pill ${r.ready ? 'good' : 'bad'}`;
  } catch (e) {
    pill.textContent = 'unreachable';
    pill.className = 'pill bad';
  }
}

function route() {
  const m = location.hash.match(/^#\/customer\/(.+)$/);
  state.detail = m ? decodeURIComponent(m[1]) : null;
  $('#overview').hidden = !!state.detail;
  $('#detail').hidden = !state.detail;
  refresh();
}

async function refresh() {
  try {
    if (state.detail) await loadDetail(state.detail);
    else await loadTable();
  } catch (e) {
    const target = state.detail ? $('#d-sub') : $('#counts');
    target.textContent = `Could not load: ${e.message}`;
  }
}

document.addEventListener('DOMContentLoaded', () => {
  setupTable();
  setupFeed();
  window.addEventListener('hashchange', route);
  route();
  health();
  setInterval(() => { if (!document.hidden) refresh(); }, TABLE_REFRESH_MS);
  setInterval(health, HEALTH_REFRESH_MS);
});
