'use strict';
/**
 * Turns the raw runs into medians, ratios and target verdicts, and renders RESULTS.md.
 * Ratios are plain quotients of the medians (a/b); for "lower is better" figures (latency,
 * memory, start time) a ratio below 1 is the good side. A ratio against an agent that did
 * not run is left empty, never estimated.
 */
const { median } = require('./stats');

const METRICS = {
  firstReplyMs: { label: 'start to first reply', unit: 'ms', better: 'lower', digits: 1 },
  idleRssMiB: { label: 'idle RSS', unit: 'MiB', better: 'lower', digits: 1 },
  rps: { label: 'requests/s', unit: 'req/s', better: 'higher', digits: 0 },
  p50us: { label: 'p50 latency', unit: 'µs', better: 'lower', digits: 0 },
  p99us: { label: 'p99 latency', unit: 'µs', better: 'lower', digits: 0 },
  MiBps: { label: 'throughput', unit: 'MiB/s', better: 'higher', digits: 1 },
  cycleMs: { label: 'freeze+thaw', unit: 'ms', better: 'lower', digits: 2 },
};

const AGENTS = ['echo', 'native', 'fallback', 'qemu-ga'];

function summarize(results) {
  const rows = [];
  const resources = [];
  for (const sc of Object.values(results.scenarios)) {
    const perAgent = {};
    for (const [agent, runs] of Object.entries(sc.runs)) {
      const metrics = {};
      for (const key of Object.keys(runs[0].metrics)) metrics[key] = median(runs.map((r) => r.metrics[key]));
      perAgent[agent] = {
        metrics, reps: runs.length,
        cpuSec: median(runs.map((r) => r.cpuSec)),
        peakRssMiB: median(runs.map((r) => r.peakRssMiB)),
        error: runs.find((r) => r.error)?.error,
      };
    }
    const metricKeys = [...new Set(Object.values(perAgent).flatMap((p) => Object.keys(p.metrics)))].filter((k) => METRICS[k]);
    for (const key of metricKeys) {
      const v = (a) => perAgent[a]?.metrics[key];
      rows.push({
        scenario: sc.id, title: sc.title, group: sc.group, metric: key,
        values: Object.fromEntries(AGENTS.map((a) => [a, v(a)])),
        // Variants asked for with --agents (native-stream, native-pool): same run, own table.
        variants: Object.fromEntries(Object.keys(perAgent).filter((a) => !AGENTS.includes(a)).map((a) => [a, v(a)])),
        ratios: { 'native/fallback': ratio(v('native'), v('fallback')), 'native/qemu-ga': ratio(v('native'), v('qemu-ga')), 'fallback/qemu-ga': ratio(v('fallback'), v('qemu-ga')) },
        errors: Object.fromEntries(AGENTS.filter((a) => perAgent[a]?.error).map((a) => [a, perAgent[a].error])),
      });
    }
    if (sc.group !== 'startup') {
      resources.push({ scenario: sc.id, cpuSec: Object.fromEntries(AGENTS.map((a) => [a, perAgent[a]?.cpuSec])), peakRssMiB: Object.fromEntries(AGENTS.map((a) => [a, perAgent[a]?.peakRssMiB])) });
    }
  }
  return { rows, resources, targets: targets(rows, resources, results) };
}

function ratio(a, b) {
  return typeof a === 'number' && typeof b === 'number' && Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : undefined;
}

/** The issue's targets, each { name, measured, required, pass }. */
function targets(rows, resources, results) {
  const out = [];
  const row = (scenario, metric) => rows.find((r) => r.scenario === scenario && r.metric === metric);
  const atLeast = (name, r, key, min) => {
    const got = r?.ratios[key];
    out.push({ name, measured: got, required: `≥ ${min}×`, pass: got === undefined ? undefined : got >= min, detail: got === undefined ? 'not measured' : `${fmtRatio(got)} (${key})` });
  };
  atLeast('sequential guest-ping vs qemu-ga', row('ping-seq', 'rps'), 'native/qemu-ga', 1.3);
  atLeast('pipelined guest-ping vs qemu-ga', row('ping-pipelined', 'rps'), 'native/qemu-ga', 3);
  for (const s of ['64KiB', '1MiB', '16MiB']) atLeast(`guest-file-read ${s} vs qemu-ga`, row(`read-${s}`, 'MiBps'), 'native/qemu-ga', 5);
  for (const r of rows.filter((x) => x.group === 'write')) atLeast(`guest-file-write ${r.scenario.slice(6)} vs qemu-ga`, r, 'native/qemu-ga', 10);
  for (const r of rows.filter((x) => x.group === 'read' || x.group === 'write')) {
    const size = r.scenario.replace(/^(read|write)-/, '');
    if (/KiB$/.test(size)) continue;
    atLeast(`${r.group} ${size}: native vs fallback (end to end)`, r, 'native/fallback', 2);
  }
  for (const c of results.micro?.cases ?? []) {
    if (c.size < 1024 * 1024 || !/file/.test(c.op)) continue;
    const got = c.ratio;
    out.push({ name: `micro ${c.op} ${c.size / 1048576} MiB: native vs fallback`, measured: got, required: '≥ 2×', pass: Number.isFinite(got) ? got >= 2 : undefined, detail: Number.isFinite(got) ? `${fmtRatio(got)} (native/fallback)` : 'not measured' });
  }
  for (const r of rows.filter((x) => x.group === 'read' || x.group === 'write')) atLeast(`${r.scenario}: fallback no slower than qemu-ga`, r, 'fallback/qemu-ga', 1);
  const peak = resources.find((r) => r.scenario === 'read-48MiB');
  if (peak) {
    const n = peak.peakRssMiB.native, q = peak.peakRssMiB['qemu-ga'];
    out.push({ name: 'peak RSS serving 48 MiB reads (native) ≤ qemu-ga', measured: n, required: q === undefined ? 'qemu-ga not measured' : `≤ ${q.toFixed(1)} MiB`, pass: n === undefined || q === undefined ? undefined : n <= q, detail: n === undefined ? 'not measured' : `${n.toFixed(1)} MiB vs ${q === undefined ? '—' : q.toFixed(1) + ' MiB'}` });
  }
  const start = row('startup', 'idleRssMiB');
  for (const a of ['native', 'fallback']) {
    const v = start?.values[a];
    out.push({ name: `idle RSS (${a}) ≤ 45 MiB`, measured: v, required: '≤ 45 MiB', pass: v === undefined ? undefined : v <= 45, detail: v === undefined ? 'not measured' : `${v.toFixed(1)} MiB` });
  }
  const first = row('startup', 'firstReplyMs');
  for (const a of ['native', 'fallback']) {
    const v = first?.values[a];
    out.push({ name: `start to first reply (${a}) < 150 ms`, measured: v, required: '< 150 ms', pass: v === undefined ? undefined : v < 150, detail: v === undefined ? 'not measured' : `${v.toFixed(1)} ms` });
  }
  return out;
}

function fmt(v, digits) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '—';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function fmtRatio(v) { return typeof v === 'number' && Number.isFinite(v) ? `${v.toFixed(2)}×` : '—'; }

function markdown(results, summary) {
  const m = results.machine;
  const agentLine = results.agents.map((a) => `${a.label}${a.available ? '' : ` (absent: ${a.why})`}`).join('; ');
  const L = [];
  L.push(`# node-qga benchmark results (${results.mode} run)`);
  L.push('');
  L.push(`Machine: ${m.cores} cores, ${m.cpu}, ${m.memGiB} GiB, ${m.distro || 'Linux'} (kernel ${m.kernel}), Node ${m.node}; load average at start ${m.loadavg.join(' ')}.`);
  L.push(`Date: ${results.date}${m.commit ? `, node-qga at commit ${m.commit}` : ''}. Repetitions: ${results.reps} per scenario, agents alternating within each repetition; figures are medians. Run time ${results.elapsedSec} s.`);
  L.push(`Agents: ${agentLine}.`);
  L.push('');
  L.push('The echo column is the client\'s ceiling (a server that does no work, same framing): a figure close to it is client-bound.');
  L.push('Ratios are quotients of the medians; for ↓ rows (lower is better) a ratio below 1 favours the numerator.');
  L.push('Throughput counts only the time from writing a request to the end of its reply; reply checking (base64 decode, CRC-32) runs between requests.');
  L.push('');
  L.push('| scenario | figure | echo | native | fallback | qemu-ga | native/fallback | native/qemu-ga | fallback/qemu-ga |');
  L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of summary.rows) {
    const d = METRICS[r.metric];
    const err = Object.keys(r.errors).length ? ` ⚠ ${Object.entries(r.errors).map(([a, e]) => `${a}: ${e.slice(0, 80)}`).join('; ')}` : '';
    L.push(`| ${r.title}${err} | ${d.label} (${d.unit})${d.better === 'lower' ? ' ↓' : ''} | ${AGENTS.map((a) => fmt(r.values[a], d.digits)).join(' | ')} | ${Object.values(r.ratios).map(fmtRatio).join(' | ')} |`);
  }
  const variants = [...new Set(summary.rows.flatMap((r) => Object.keys(r.variants)))];
  if (variants.length) {
    L.push('');
    L.push(`## Variants of the native agent (same run; ${variants.map((v) => `${v}: ${results.agents.find((a) => a.id === v)?.label ?? v}`).join('; ')})`);
    L.push('');
    L.push(`| scenario | figure | native | ${variants.join(' | ')} | ${variants.map((v) => `native/${v}`).join(' | ')} |`);
    L.push(`|---|---|---:|${variants.map(() => '---:|').join('')}${variants.map(() => '---:|').join('')}`);
    for (const r of summary.rows) {
      const d = METRICS[r.metric];
      L.push(`| ${r.title} | ${d.label} (${d.unit})${d.better === 'lower' ? ' ↓' : ''} | ${fmt(r.values.native, d.digits)} | ${variants.map((v) => fmt(r.variants[v], d.digits)).join(' | ')} | ${variants.map((v) => fmtRatio(ratio(r.values.native, r.variants[v]))).join(' | ')} |`);
    }
  }
  L.push('');
  L.push('## CPU seconds and peak RSS per scenario (agent process, from /proc; peak reset with clear_refs before each run)');
  L.push('');
  L.push('| scenario | CPU s native | CPU s fallback | CPU s qemu-ga | peak RSS MiB native | fallback | qemu-ga |');
  L.push('|---|---:|---:|---:|---:|---:|---:|');
  for (const r of summary.resources) {
    L.push(`| ${r.scenario} | ${fmt(r.cpuSec.native, 2)} | ${fmt(r.cpuSec.fallback, 2)} | ${fmt(r.cpuSec['qemu-ga'], 2)} | ${fmt(r.peakRssMiB.native, 1)} | ${fmt(r.peakRssMiB.fallback, 1)} | ${fmt(r.peakRssMiB['qemu-ga'], 1)} |`);
  }
  if (results.afterRssMiB) {
    L.push('');
    L.push(`RSS after all scenarios (MiB): ${Object.entries(results.afterRssMiB).map(([a, v]) => `${a} ${v.toFixed(1)}`).join(', ')}.`);
  }
  if (results.micro) {
    L.push('');
    L.push(`## Micro-benchmarks: native addon vs fallback, in process (MiB/s of raw bytes; addon base64 encoder: ${results.micro.addon.base64Encoder ?? results.micro.addon.error})`);
    L.push('');
    L.push('| operation | size | native | fallback | native/fallback |');
    L.push('|---|---:|---:|---:|---:|');
    for (const c of results.micro.cases) L.push(`| ${c.op} | ${c.size >= 1048576 ? `${c.size / 1048576} MiB` : `${c.size / 1024} KiB`} | ${fmt(c.native, 0)} | ${fmt(c.fallback, 0)} | ${fmtRatio(c.ratio)} |`);
  }
  L.push('');
  L.push('## Targets (issue 5)');
  L.push('');
  L.push('| target | required | measured | verdict |');
  L.push('|---|---|---|---|');
  for (const t of summary.targets) L.push(`| ${t.name} | ${t.required} | ${t.detail} | ${t.pass === undefined ? 'not measured' : t.pass ? 'met' : '**missed**'} |`);
  const skipped = Object.entries(results.skipped);
  if (skipped.length) {
    L.push('');
    L.push('## Skipped');
    L.push('');
    for (const [k, why] of skipped) L.push(`- ${k}: ${why}`);
  }
  if (results.errors.length) {
    L.push('');
    L.push('## Errors');
    L.push('');
    for (const e of results.errors) L.push(`- ${e.scenario} / ${e.agent}: ${e.error.split('\n')[0]}`);
  }
  L.push('');
  return L.join('\n');
}

module.exports = { summarize, markdown };
