#!/usr/bin/env node
// Soak test: runs the agent (node dist/cli.js -m unix-listen) as a child process and sends it
// N mixed requests — ping, sync, sync-delimited, info, file writes and reads of random sizes
// checked by SHA-256, malformed requests — half over one long connection and half over many
// short ones. Every reply is checked. The agent's RSS and open descriptors are sampled every
// --sample requests and printed as a curve; the run fails on any wrong reply, on a descriptor
// leak, or (with --max-rss-growth-mb) when RSS after warm-up grows more than that.
//
//   node scripts/soak.js                      # CI size: 20000 requests, well under a minute
//   node scripts/soak.js --requests 1000000   # the long run (about 10-20 minutes here)
// Options: --requests N, --sample N (default N/20), --mode both|one|many, --backend auto|native|fallback,
//          --seed N, --max-write BYTES (default 1 MiB), --max-rss-growth-mb MB (default 64), --json FILE
'use strict';
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const REQUESTS = Number(opt('--requests', '20000'));
const SAMPLE = Number(opt('--sample', String(Math.max(1, Math.floor(REQUESTS / 20)))));
const MODE = opt('--mode', 'both');
const BACKEND = opt('--backend', 'auto');
const MAX_WRITE = Number(opt('--max-write', String(1 << 20)));
const MAX_RSS_GROWTH_MB = Number(opt('--max-rss-growth-mb', '64'));
const JSON_OUT = opt('--json', '');
let seed = Number(opt('--seed', String(Date.now() % 1e9))) >>> 0 || 1;

function rand(n) {
  seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
  return seed % n;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the agent -------------------------------------------------------------------

async function startAgent() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-soak-'));
  const sock = path.join(dir, 'qga.sock');
  fs.writeFileSync(path.join(dir, 'empty.conf'), '');
  const cli = path.join(__dirname, '..', 'dist', 'cli.js');
  if (!fs.existsSync(cli)) throw new Error(`${cli} not built: run npm run build`);
  const child = spawn(process.execPath, [cli, '-m', 'unix-listen', '-p', sock, '-t', dir, '-f', path.join(dir, 'qga.pid'),
    '-c', path.join(dir, 'empty.conf'), '--backend', BACKEND], { stdio: ['ignore', 'ignore', 'inherit'] });
  process.on('exit', () => { if (child.exitCode === null) child.kill('SIGKILL'); fs.rmSync(dir, { recursive: true, force: true }); });
  for (let i = 0; i < 400 && !fs.existsSync(sock); i++) await sleep(25);
  if (!fs.existsSync(sock)) throw new Error('agent did not create its socket');
  return { child, pid: child.pid, sock, dir };
}

function procStats(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  return { rssKb: rss, fds: fs.readdirSync(`/proc/${pid}/fd`).length };
}

// ---- a client connection with reply matching ------------------------------------------

class Conn {
  constructor(sock) {
    this.sock = net.connect(sock);
    this.buf = Buffer.alloc(0);
    this.waiters = [];
    this.closed = false;
    this.sock.on('data', (d) => { this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d; this.pump(); });
    this.sock.on('close', () => { this.closed = true; for (const w of this.waiters.splice(0)) w.reject(new Error('connection closed')); });
    this.sock.on('error', () => {});
    this.ready = new Promise((resolve, reject) => { this.sock.once('connect', resolve); this.sock.once('error', reject); });
  }
  pump() {
    for (;;) {
      if (!this.waiters.length) return;
      const nl = this.buf.indexOf(0x0a);
      if (nl < 0) return;
      let line = this.buf.subarray(0, nl);
      this.buf = this.buf.subarray(nl + 1);
      let delimited = false;
      if (line[0] === 0xff) { delimited = true; line = line.subarray(1); }
      this.waiters.shift().resolve({ line: line.toString('latin1'), delimited });
    }
  }
  /** Sends the text and resolves with `count` reply lines. */
  request(text, count = 1) {
    const replies = [];
    for (let i = 0; i < count; i++) replies.push(new Promise((resolve, reject) => this.waiters.push({ resolve, reject })));
    this.sock.write(text);
    this.pump();
    return Promise.all(replies);
  }
  close() { this.sock.end(); }
}

// ---- the request mix --------------------------------------------------------------

let failures = 0;
function fail(what, detail) {
  failures++;
  if (failures <= 20) console.log(`WRONG REPLY (${what}): ${String(detail).slice(0, 300)}`);
}
function parse(reply, what) {
  try { return JSON.parse(reply.line); } catch { fail(what, `not JSON: ${reply.line}`); return {}; }
}

const handles = [];
const stats = { ping: 0, sync: 0, 'sync-delimited': 0, info: 0, 'file write+read': 0, malformed: 0, bytes: 0 };

/** One operation; returns how many requests it sent. */
async function operation(c) {
  const r = rand(100);
  if (r < 20) {
    const [rep] = await c.request('{"execute":"guest-ping"}');
    if (rep.line !== '{"return": {}}') fail('ping', rep.line);
    stats.ping++;
    return 1;
  }
  if (r < 35) {
    const id = rand(2 ** 31);
    const [rep] = await c.request(`{"execute":"guest-sync","arguments":{"id":${id}},"id":"s${id}"}`);
    if (rep.line !== `{"return": ${id}, "id": "s${id}"}`) fail('sync', rep.line);
    stats.sync++;
    return 1;
  }
  if (r < 40) {
    const id = rand(2 ** 31);
    // A client flushes with 0xFF first: that byte is a lexical error with its own error reply
    // (as in qemu-ga), then the sync reply comes after the 0xFF sentinel.
    const [flushed, rep] = await c.request(Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"execute":"guest-sync-delimited","arguments":{"id":${id}}}`)]), 2);
    if (flushed.line !== '{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'\\uFFFD\'"}}') fail('0xFF flush', flushed.line);
    if (!rep.delimited || rep.line !== `{"return": ${id}}`) fail('sync-delimited', rep.line);
    stats['sync-delimited']++;
    return 2;
  }
  if (r < 45) {
    const [rep] = await c.request('{"execute":"guest-info"}');
    const v = parse(rep, 'info').return;
    if (!v || typeof v.version !== 'string' || !Array.isArray(v.supported_commands) || v.supported_commands.length < 20) fail('info', rep.line);
    stats.info++;
    return 1;
  }
  if (r < 85) {
    // Sizes: mostly small, sometimes a few KiB, now and then up to MAX_WRITE.
    const k = rand(10);
    const size = k < 6 ? rand(512) : k < 9 ? rand(64 << 10) : rand(MAX_WRITE + 1);
    const data = crypto.randomBytes(size);
    const h = handles[rand(handles.length)];
    const [w, s, rd] = await c.request(
      `{"execute":"guest-file-seek","arguments":{"handle":${h},"offset":0,"whence":"set"}}` +
      `{"execute":"guest-file-write","arguments":{"handle":${h},"buf-b64":"${data.toString('base64')}"}}` +
      `{"execute":"guest-file-seek","arguments":{"handle":${h},"offset":0,"whence":0}}` +
      `{"execute":"guest-file-read","arguments":{"handle":${h},"count":${size}}}`, 4).then((x) => [x[1], x[2], x[3]]);
    const wv = parse(w, 'write').return;
    if (!wv || wv.count !== size) fail('write', w.line);
    const sv = parse(s, 'seek').return;
    if (!sv || sv.position !== 0) fail('seek', s.line);
    const rv = parse(rd, 'read').return;
    if (!rv || rv.count !== size) fail('read', rd.line.slice(0, 200));
    else {
      const back = Buffer.from(rv['buf-b64'], 'base64');
      const same = crypto.createHash('sha256').update(back).digest('hex') === crypto.createHash('sha256').update(data).digest('hex');
      if (!same) fail('read checksum', `size ${size}`);
    }
    stats['file write+read']++;
    stats.bytes += 2 * size;
    return 4;
  }
  // Malformed requests, each with its one known error reply.
  const bad = [
    ['{"execute":"guest-no-such-command"}', 'CommandNotFound'],
    ['{"execute":"guest-sync"}', 'GenericError'],
    ['{"execute":"guest-ping","arguments":[1]}', 'GenericError'],
    ['[1,2]', 'GenericError'],
    ['{"execute":"guest-file-read","arguments":{"handle":-5}}', 'GenericError'],
    ['{"execute":"guest-file-write","arguments":{"handle":1,"buf-b64":"#"}}', 'GenericError'],
    [Buffer.concat([Buffer.from('{"execute":"guest-pi'), Buffer.from([0xff])]), 'GenericError'],
    ['{"execute":"guest-ping","id":1,"id":2}', 'GenericError'],
  ][rand(8)];
  const [rep] = await c.request(bad[0]);
  const e = parse(rep, 'malformed').error;
  if (!e || e.class !== bad[1] || typeof e.desc !== 'string') fail(`malformed ${String(bad[0]).slice(0, 40)}`, rep.line);
  stats.malformed++;
  return 1;
}

// ---- main -------------------------------------------------------------------------

async function main() {
  const agent = await startAgent();
  const samples = [];
  let sent = 0;
  let nextSample = 0;
  const t0 = Date.now();
  const sample = (phase) => {
    const s = procStats(agent.pid);
    samples.push({ requests: sent, phase, rssKb: s.rssKb, fds: s.fds, seconds: (Date.now() - t0) / 1000 });
    console.log(`${String(sent).padStart(9)} requests  ${phase.padEnd(5)}  RSS ${(s.rssKb / 1024).toFixed(1).padStart(7)} MiB  fds ${s.fds}  ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  };

  // Open the files every mode shares (handles outlive connections, as in qemu-ga).
  const setup = new Conn(agent.sock);
  await setup.ready;
  for (let i = 0; i < 4; i++) {
    const [rep] = await setup.request(JSON.stringify({ execute: 'guest-file-open', arguments: { path: path.join(agent.dir, `f${i}`), mode: 'w+' } }));
    handles.push(parse(rep, 'open').return);
  }
  setup.close();
  await sleep(50);
  sample('start');
  nextSample = SAMPLE;

  const phases = MODE === 'both' ? [['one', REQUESTS / 2], ['many', REQUESTS]] : [[MODE, REQUESTS]];
  for (const [phase, until] of phases) {
    if (phase === 'one') {
      const c = new Conn(agent.sock);
      await c.ready;
      while (sent < until) {
        sent += await operation(c);
        if (sent >= nextSample) { sample(phase); nextSample += SAMPLE; }
      }
      c.close();
    } else {
      while (sent < until) {
        const c = new Conn(agent.sock);
        await c.ready;
        for (let k = 1 + rand(5); k > 0 && sent < until; k--) {
          sent += await operation(c);
          if (sent >= nextSample) { sample(phase); nextSample += SAMPLE; }
        }
        c.close();
        await new Promise((r) => c.sock.once('close', r));
      }
    }
    await sleep(50);
  }
  sample('end');
  const secs = (Date.now() - t0) / 1000;

  // Warm-up: the first 10% of samples. Compare the rest with the warmed-up level.
  const warm = samples[Math.min(samples.length - 1, Math.max(1, Math.floor(samples.length / 10)))];
  const after = samples.slice(samples.indexOf(warm));
  const maxRss = Math.max(...after.map((s) => s.rssKb));
  const last = samples[samples.length - 1];
  const rssGrowthMb = (last.rssKb - warm.rssKb) / 1024;
  console.log(`\n${sent} requests in ${secs.toFixed(1)} s (${Math.round(sent / secs)} req/s), ${(stats.bytes / 1048576).toFixed(0)} MiB of file data`);
  console.log(`mix: ${Object.entries(stats).filter(([k]) => k !== 'bytes').map(([k, v]) => `${k} ${v}`).join(', ')} (operations)`);
  console.log(`RSS after warm-up ${(warm.rssKb / 1024).toFixed(1)} MiB, max ${(maxRss / 1024).toFixed(1)} MiB, end ${(last.rssKb / 1024).toFixed(1)} MiB; fds ${samples[0].fds} -> ${last.fds}`);
  console.log(`wrong replies: ${failures}`);
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify({ requests: sent, seconds: secs, stats, samples, failures }, null, 1));

  // Close the handles, then check the descriptors are back to the start level.
  const fin = new Conn(agent.sock);
  await fin.ready;
  for (const h of handles) await fin.request(`{"execute":"guest-file-close","arguments":{"handle":${h}}}`);
  fin.close();
  await sleep(100);
  const end = procStats(agent.pid);
  const leak = end.fds > samples[0].fds - handles.length + 2;
  if (leak) console.log(`DESCRIPTOR LEAK: ${samples[0].fds} at start (with ${handles.length} files open), ${end.fds} after closing them`);
  const rssBad = rssGrowthMb > MAX_RSS_GROWTH_MB;
  if (rssBad) console.log(`RSS GREW ${rssGrowthMb.toFixed(1)} MiB after warm-up (limit ${MAX_RSS_GROWTH_MB})`);
  if (agent.child.exitCode !== null) console.log(`AGENT EXITED with ${agent.child.exitCode}`);
  agent.child.kill('SIGTERM');
  const ok = failures === 0 && !leak && !rssBad && agent.child.exitCode === null;
  console.log(ok ? 'soak: OK' : 'soak: FAILED');
  process.exit(ok ? 0 : 1);
}

main().catch((e) => { console.log(`soak crashed: ${e.stack}`); process.exit(2); });
