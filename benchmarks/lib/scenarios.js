'use strict';
/**
 * The scenarios, each run against one connected agent. A scenario resolves with its metrics
 * (numbers) and throws when a reply is wrong: a fast wrong answer is not a result.
 * Time is measured from writing a request to the end of its reply line; checking the reply
 * (base64 decoding, checksums) happens between requests and is not counted.
 */
const fs = require('node:fs');
const zlib = require('node:zlib');
const { performance } = require('node:perf_hooks');
const { PING, PONG } = require('./agents');
const { percentile } = require('./stats');

const MiB = 1024 * 1024;

function mustEqual(line, expected, what) {
  const got = line.toString('latin1');
  if (got !== expected) throw new Error(`${what}: expected ${expected.slice(0, 120)}, got ${got.slice(0, 200)}`);
}

async function pingSequential(agent, { count }) {
  const t0 = performance.now();
  const lat = await agent.client.sequence(count, () => PING, (line) => { if (line.length !== PONG.length) mustEqual(line, PONG, 'guest-ping'); });
  const total = performance.now() - t0;
  lat.sort();
  return { rps: count / (total / 1000), p50us: percentile(lat, 0.5) * 1000, p99us: percentile(lat, 0.99) * 1000 };
}

async function pingPipelined(agent, { count }) {
  const payload = Buffer.alloc(PING.length * count);
  for (let i = 0; i < count; i++) PING.copy(payload, i * PING.length);
  const t0 = performance.now();
  const t1 = await agent.client.pipeline(payload, count, (line) => { if (line.length !== PONG.length) mustEqual(line, PONG, 'pipelined guest-ping'); });
  return { rps: count / ((t1 - t0) / 1000) };
}

async function syncRandom(agent, { count }) {
  const ids = Array.from({ length: count }, () => Math.floor(Math.random() * 2 ** 31));
  const reqs = ids.map((id) => Buffer.from(`{"execute":"guest-sync","arguments":{"id":${id}}}\n`, 'latin1'));
  const t0 = performance.now();
  await agent.client.sequence(count, (i) => reqs[i], (line, i) => mustEqual(line, `{"return": ${ids[i]}}`, 'guest-sync'));
  return { rps: count / ((performance.now() - t0) / 1000) };
}

/** The integer in `{"return": N}`, or throws with the reply. */
function returnInt(line, what) {
  const m = /^\{"return": (\d+)\}$/.exec(line.toString('latin1'));
  if (!m) throw new Error(`${what}: unexpected reply ${line.toString('latin1', 0, 300)}`);
  return Number(m[1]);
}

async function call(agent, json, what) {
  const { line } = await agent.client.request(Buffer.from(JSON.stringify(json) + '\n'));
  return { line, text: line.toString('latin1', 0, 4096), what };
}

async function openFile(agent, file, mode) {
  const { line } = await call(agent, { execute: 'guest-file-open', arguments: { path: file, mode } });
  return returnInt(line, `guest-file-open ${file}`);
}

async function closeFile(agent, handle) {
  const { line } = await call(agent, { execute: 'guest-file-close', arguments: { handle } });
  mustEqual(line, '{"return": {}}', 'guest-file-close');
}

const READ_HEAD = Buffer.from('{"return": {"count": ');
const B64_KEY = Buffer.from('"buf-b64": "');

/**
 * Reads `file` (its content is `data`) through guest-file-read with `count`, `limit` bytes
 * in all; checks every reply's count and the CRC-32 of everything decoded.
 */
async function fileRead(agent, { file, data, count, limit, verify }) {
  const want = Math.min(limit ?? data.length, data.length);
  const handle = await openFile(agent, file, 'r');
  const req = Buffer.from(`{"execute":"guest-file-read","arguments":{"handle":${handle},"count":${count}}}\n`);
  const c = agent.client;
  let got = 0, busy = 0, crc = 0, requests = 0;
  try {
    while (got < want) {
      const s = performance.now();
      const { line, t } = await c.request(req);
      busy += t - s;
      requests++;
      if (line.compare(READ_HEAD, 0, READ_HEAD.length, 0, READ_HEAD.length) !== 0) throw new Error(`guest-file-read: unexpected reply ${line.toString('latin1', 0, 300)}`);
      const expectN = Math.min(count, data.length - got);
      // The echo server knows no file: it always answers the full count (bytes it sent are bytes moved).
      const n = verify ? parseInt(line.toString('latin1', READ_HEAD.length, READ_HEAD.length + 12), 10) : expectN;
      if (n !== expectN) throw new Error(`guest-file-read: count ${n}, expected ${expectN}`);
      if (verify) {
        const k = line.indexOf(B64_KEY, READ_HEAD.length);
        const e = line.indexOf(34, k + B64_KEY.length);
        const bytes = Buffer.from(line.toString('latin1', k + B64_KEY.length, e), 'base64');
        if (bytes.length !== n) throw new Error(`guest-file-read: ${bytes.length} bytes decoded, count says ${n}`);
        crc = zlib.crc32(bytes, crc);
      }
      got += n;
    }
  } finally {
    await closeFile(agent, handle);
  }
  if (verify && crc !== zlib.crc32(data.subarray(0, got))) throw new Error(`guest-file-read: checksum mismatch at count ${count}`);
  return { MiBps: got / MiB / (busy / 1000), requests };
}

/**
 * Request bodies for writing `data` in `chunk`-byte pieces, without the handle (prefix is
 * added per run), so one encoding serves every agent and repetition.
 */
function writeBodies(data, chunk) {
  const bodies = [];
  for (let off = 0; off < data.length; off += chunk) {
    const piece = data.subarray(off, Math.min(off + chunk, data.length));
    bodies.push({ n: piece.length, body: Buffer.from(`"buf-b64":"${piece.toString('base64')}"}}\n`, 'latin1') });
  }
  return bodies;
}

async function fileWrite(agent, { target, data, bodies, verify }) {
  const handle = await openFile(agent, target, 'w');
  const prefix = Buffer.from(`{"execute":"guest-file-write","arguments":{"handle":${handle},`);
  const c = agent.client;
  let busy = 0, written = 0;
  try {
    for (const { n, body } of bodies) {
      const s = performance.now();
      const { line, t } = await c.request([prefix, body]);
      busy += t - s;
      mustEqual(line, `{"return": {"count": ${n}, "eof": false}}`, 'guest-file-write');
      written += n;
    }
  } finally {
    await closeFile(agent, handle);
  }
  if (verify) {
    const onDisk = fs.readFileSync(target);
    fs.unlinkSync(target);
    if (onDisk.length !== data.length || zlib.crc32(onDisk) !== zlib.crc32(data)) throw new Error(`guest-file-write: ${target} differs from what was sent`);
  }
  return { MiBps: written / MiB / (busy / 1000) };
}

/** Round trips of one read-only command, for `ms` or `max` requests, whichever ends first (at least 3). */
async function inventory(agent, { command, ms, max }) {
  const req = Buffer.from(`{"execute":"${command}"}\n`);
  const c = agent.client;
  let n = 0, busy = 0, error = null;
  const start = performance.now();
  while (n < 3 || (n < max && performance.now() - start < ms)) {
    const s = performance.now();
    const { line, t } = await c.request(req);
    busy += t - s;
    n++;
    if (line[2] !== 0x72 /* {"return" */) { error = line.toString('latin1', 0, 300); }
  }
  return { rps: n / (busy / 1000), error };
}

/** Malformed requests and the exact reply qemu-ga gives to each (one reply per line). */
const MALFORMED = [
  ['{"execute":"guest-no-such-cmd"}', '{"error": {"class": "CommandNotFound", "desc": "The command guest-no-such-cmd has not been found"}}'],
  ['{"execute":"guest-ping","arguments":{"x":1}}', '{"error": {"class": "GenericError", "desc": "Parameter \'x\' is unexpected"}}'],
  ['{"arguments":{}}', '{"error": {"class": "GenericError", "desc": "QMP input lacks member \'execute\'"}}'],
  ['{"execute":"guest-sync","arguments":{"id":"str"}}', '{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'id\', expected: integer"}}'],
  ['{"execute":"guest-file-read","arguments":{"handle":999999}}', '{"error": {"class": "GenericError", "desc": "handle \'999999\' has not been found"}}'],
  ['[1,2]', '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}'],
  ['"hello"', '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}'],
  ['{"execute":1}', '{"error": {"class": "GenericError", "desc": "QMP input member \'execute\' must be a string"}}'],
  ['{"execute": }', '{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}'],
  ['nonsense', '{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword \'nonsense\'"}}'],
].map(([req, reply]) => ({ req: Buffer.from(req + '\n'), reply }));

async function malformed(agent, { count }) {
  const c = agent.client;
  let busy = 0;
  for (let i = 0; i < count; i++) {
    const m = MALFORMED[i % MALFORMED.length];
    const s = performance.now();
    const { line, t } = await c.request(m.req);
    busy += t - s;
    mustEqual(line, m.reply, `malformed request ${m.req.toString().trim()}`);
  }
  // Make sure the agent is still in step after the junk.
  const { line } = await c.request(PING);
  mustEqual(line, PONG, 'guest-ping after malformed requests');
  return { rps: count / (busy / 1000) };
}

/** Freeze the given loop mount points with guest-fsfreeze-freeze-list, then thaw; ms per cycle. */
async function freezeThaw(agent, { mountpoints, cycles }) {
  // Without a non-empty list, freeze-list means "every filesystem": never send that here.
  if (!Array.isArray(mountpoints) || mountpoints.length === 0 || mountpoints.some((m) => typeof m !== 'string' || m === '/' || !m.startsWith('/'))) {
    throw new Error(`refusing to freeze: bad mount point list ${JSON.stringify(mountpoints)}`);
  }
  const freezeReq = Buffer.from(JSON.stringify({ execute: 'guest-fsfreeze-freeze-list', arguments: { mountpoints } }) + '\n');
  const thawReq = Buffer.from('{"execute":"guest-fsfreeze-thaw"}\n');
  let freezeMs = 0, thawMs = 0;
  for (let i = 0; i < cycles; i++) {
    let s = performance.now();
    const f = await agent.client.request(freezeReq);
    freezeMs += f.t - s;
    s = performance.now();
    const u = await agent.client.request(thawReq);
    thawMs += u.t - s;
    const frozen = /^\{"return": (\d+)\}$/.exec(f.line.toString('latin1'));
    const thawed = /^\{"return": (\d+)\}$/.exec(u.line.toString('latin1'));
    if (!frozen || Number(frozen[1]) !== mountpoints.length) throw new Error(`guest-fsfreeze-freeze-list: expected ${mountpoints.length} frozen, got ${f.line.toString('latin1', 0, 300)}`);
    if (!thawed || Number(thawed[1]) < mountpoints.length) throw new Error(`guest-fsfreeze-thaw: expected at least ${mountpoints.length} thawed, got ${u.line.toString('latin1', 0, 300)}`);
  }
  return { cycleMs: (freezeMs + thawMs) / cycles, freezeMs: freezeMs / cycles, thawMs: thawMs / cycles };
}

module.exports = { pingSequential, pingPipelined, syncRandom, fileRead, fileWrite, writeBodies, inventory, malformed, freezeThaw, MiB, MALFORMED };
