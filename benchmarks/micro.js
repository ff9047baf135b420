#!/usr/bin/env node
/**
 * Micro-benchmarks of the native layer against the pure-TypeScript fallback, in one process:
 * base64 encode and decode, and the two file paths the agent uses (file -> base64 reply line,
 * base64 request payload -> file), at sizes from 4 KiB to 48 MiB.
 *
 *   node benchmarks/micro.js [--budget-ms N] [--json] [--quick]
 *
 * Figures are MiB/s of raw (decoded) bytes; each is the median of 3 timed runs of at least
 * --budget-ms each. The fallback's reply is counted up to bytes ready for the socket
 * (its base64 string converted to latin1 bytes, as the socket write does), so both sides
 * deliver the same thing.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { performance } = require('node:perf_hooks');
const { median } = require('./lib/stats');

const dist = path.resolve(__dirname, '..', 'dist');
const { loadAddon } = require(path.join(dist, 'backend', 'load-addon.js'));
const fallbackFile = require(path.join(dist, 'backend', 'fallback-file.js'));
const { decodeBase64Qga } = require(path.join(dist, 'base64.js'));

const args = process.argv.slice(2);
const budgetMs = Number(args[args.indexOf('--budget-ms') + 1]) || 200;
const asJson = args.includes('--json');
const KiB = 1024, MiB = 1024 * 1024;
// --quick stops at 16 MiB: every 48 MiB case costs seconds of page faults on a busy VM.
const SIZES = args.includes('--quick') ? [4 * KiB, 64 * KiB, 1 * MiB, 16 * MiB] : [4 * KiB, 64 * KiB, 1 * MiB, 16 * MiB, 48 * MiB];

function sizeLabel(n) { return n >= MiB ? `${n / MiB} MiB` : `${n / KiB} KiB`; }

/** MiB/s of `bytes` per call of `fn` (sync or async), median of 3 runs of >= budget each. */
async function measure(bytes, fn) {
  await fn(); // warm up (and first-touch the buffers)
  const rates = [];
  for (let r = 0; r < 3; r++) {
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    do { await fn(); n++; t = performance.now(); } while (t - t0 < budgetMs || n < 2);
    rates.push((bytes * n) / MiB / ((t - t0) / 1000));
  }
  return median(rates);
}

async function main() {
  const loaded = loadAddon();
  const addon = loaded.addon;
  const results = { addon: addon ? { base64Encoder: addon.base64Encoder } : { error: String(loaded.error?.message) }, cases: [] };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-qga-micro-'));
  try {
    const data = crypto.randomBytes(SIZES[SIZES.length - 1]);
    const file = path.join(dir, 'data.bin');
    fs.writeFileSync(file, data);
    const readFd = fs.openSync(file, 'r');
    const writeFd = fs.openSync(path.join(dir, 'out.bin'), 'w');
    const add = (op, size, native, fallback) => {
      results.cases.push({ op, size, native, fallback, ratio: native / fallback });
      if (!asJson) process.stdout.write(`${op.padEnd(22)} ${sizeLabel(size).padStart(7)}  native ${native.toFixed(0).padStart(6)} MiB/s  fallback ${fallback.toFixed(0).padStart(6)} MiB/s  ${(native / fallback).toFixed(2)}x\n`);
    };
    for (const size of SIZES) {
      const raw = data.subarray(0, size);
      const b64 = Buffer.from(raw.toString('base64'), 'latin1');
      const nan = async () => NaN;
      // base64 encode: addon (in place, SIMD) vs Buffer#toString('base64') + latin1 bytes.
      add('base64 encode', size,
        addon ? await measure(size, () => addon.base64Encode(raw)) : await nan(),
        await measure(size, () => Buffer.from(raw.toString('base64'), 'latin1')));
      // base64 decode with qemu-ga's rules (validation included).
      add('base64 decode', size,
        addon ? await measure(size, () => addon.base64DecodeGlib(b64)) : await nan(),
        await measure(size, () => decodeBase64Qga(b64.toString('latin1'))));
      // file -> reply line (pread + encode + framing).
      add('file read -> base64', size,
        addon ? await measure(size, async () => {
          const r = await addon.readFileReply(readFd, 0, size, '');
          // Hand the block back as the agent does once the reply is written (older addons: GC does).
          if (typeof addon.recycleReply === 'function' && r.token !== undefined) addon.recycleReply(r.token);
        }) : await nan(),
        await measure(size, async () => {
          const r = await fallbackFile.readFileReply(readFd, 0, size, '');
          for (const c of r.chunks) if (typeof c === 'string') Buffer.from(c, 'latin1');
        }));
      // request payload (base64 bytes) -> file (validate + decode + pwrite).
      add('base64 -> file write', size,
        addon ? await measure(size, () => addon.writeBase64(writeFd, 0, b64, 0, b64.length, -1)) : await nan(),
        await measure(size, () => fallbackFile.writeBase64(writeFd, 0, b64, 0, b64.length, undefined)));
    }
    fs.closeSync(readFd);
    fs.closeSync(writeFd);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (asJson) process.stdout.write(JSON.stringify(results) + '\n');
}

main().catch((e) => { process.stderr.write(`micro: ${e.stack || e}\n`); process.exit(1); });
