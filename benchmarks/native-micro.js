#!/usr/bin/env node
// Micro-benchmark of the addon's file data path against Node's own base64 (simdutf) in the
// same process. Raw (pre-base64) MB/s; the source file lives on tmpfs, writes go to /dev/null.
//   node benchmarks/native-micro.js [--ms=400]
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');

const addon = require(path.join(__dirname, '..', 'build', 'Release', 'qga_native.node'));
const msArg = process.argv.find((a) => a.startsWith('--ms='));
const BUDGET_MS = msArg ? Number(msArg.slice(5)) : 400;
const SIZES = [64 << 10, 1 << 20, 16 << 20];
const tmpBase = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();

async function rate(bytes, fn) {
  await fn(); // warm-up
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < BUDGET_MS * 1e6 || n < 3) {
    await fn();
    n++;
    elapsed = Number(process.hrtime.bigint() - start);
  }
  return (bytes * n) / (elapsed / 1e9) / 1e6;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(tmpBase, 'qga-bench-'));
  const devnull = fs.openSync('/dev/null', 'w');
  const rows = [];
  try {
    for (const size of SIZES) {
      const data = crypto.randomBytes(size);
      const file = path.join(dir, `f${size}`);
      fs.writeFileSync(file, data);
      const fd = fs.openSync(file, 'r');
      const b64 = Buffer.from(data.toString('base64'));
      const b64Str = b64.toString('latin1');
      const wrapped = Buffer.from(b64Str.replace(/.{76}/g, '$&\n'));
      const spare = Buffer.allocUnsafe(size);
      const decodeDst = Buffer.allocUnsafe(size);
      const id = ', "id": 1';
      const row = { size: size >= 1 << 20 ? `${size >> 20} MiB` : `${size >> 10} KiB` };

      // guest-file-read: the whole reply, then written to /dev/null.
      row['read reply: addon (freed by GC)'] = await rate(size, async () => {
        const r = await addon.readFileReply(fd, 0, size, id);
        fs.writeSync(devnull, r.reply);
      });
      row['read reply: addon + recycleReply'] = await rate(size, async () => {
        const r = await addon.readFileReply(fd, 0, size, id);
        fs.writeSync(devnull, r.reply);
        addon.recycleReply(r.token);
      });
      row['read reply: JS (Buffer base64, 3 writes)'] = await rate(size, async () => {
        const n = fs.readSync(fd, spare, 0, size, 0);
        fs.writeSync(devnull, `{"return": {"count": ${n}, "buf-b64": "`);
        fs.writeSync(devnull, spare.toString('base64', 0, n), null, 'latin1');
        fs.writeSync(devnull, `", "eof": false}${id}}\n`);
      });
      // encoders alone
      row['encode: addon best'] = await rate(size, async () => addon.base64Encode(data));
      row['encode: addon scalar'] = await rate(size, async () => addon.base64Encode(data, 'scalar'));
      row['encode: Buffer.toString'] = await rate(size, async () => data.toString('base64'));

      // guest-file-write: validate + decode + write to /dev/null.
      row['write: addon'] = await rate(size, () => addon.writeBase64(devnull, -1, b64, 0, b64.length, -1));
      row['write: addon, 76-col'] = await rate(size, () => addon.writeBase64(devnull, -1, wrapped, 0, wrapped.length, -1));
      row['write: JS (regex + Buffer.write)'] = await rate(size, async () => {
        const s = b64.toString('latin1');
        if (/[^A-Za-z0-9+/=\n]/.test(s)) throw new Error('invalid');
        const n = decodeDst.write(s, 'base64');
        fs.writeSync(devnull, decodeDst, 0, n);
      });
      row['decode: Buffer.from(str)'] = await rate(size, async () => Buffer.from(b64Str, 'base64'));
      fs.closeSync(fd);
      rows.push(row);
    }
  } finally {
    fs.closeSync(devnull);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const keys = Object.keys(rows[0]).filter((k) => k !== 'size');
  console.log(`node ${process.version}, encoder ${addon.base64Encoder}, ${BUDGET_MS} ms per cell, MB/s of raw data`);
  console.log(['case'.padEnd(42), ...rows.map((r) => r.size.padStart(9))].join(''));
  for (const k of keys) console.log([k.padEnd(42), ...rows.map((r) => r[k].toFixed(0).padStart(9))].join(''));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
