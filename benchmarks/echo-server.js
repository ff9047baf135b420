#!/usr/bin/env node
// Node twin of echo-server.c, used when no C compiler is available (results are labelled
// "echo (node)": its ceiling is lower than the C one). Same canned replies, same framing.
'use strict';
const net = require('node:net');
const fs = require('node:fs');

const MAX_READ_COUNT = 48 * 1024 * 1024;
const zerosB64 = Buffer.alloc(Math.ceil(MAX_READ_COUNT / 3) * 4, 'A');

function answer(line) {
  const text = line.length > 4096 ? line.toString('latin1', 0, 4096) : line.toString('latin1');
  if (text.includes('guest-sync')) {
    const m = /"id"\s*:\s*([^,}\s]+)/.exec(text);
    return [`{"return": ${m ? m[1] : 'null'}}\n`];
  }
  if (text.includes('guest-file-open')) return ['{"return": 1}\n'];
  if (text.includes('guest-file-read')) {
    const m = /"count"\s*:\s*(\d+)/.exec(text);
    const count = Math.min(m ? Number(m[1]) : 4096, MAX_READ_COUNT);
    return [`{"return": {"count": ${count}, "buf-b64": "`, zerosB64.subarray(0, Math.ceil(count / 3) * 4), '", "eof": false}}\n'];
  }
  if (text.includes('guest-file-write')) {
    const k = line.indexOf('"buf-b64"');
    let count = 0;
    if (k >= 0) {
      const q = line.indexOf(34, k + 9);
      const e = line.indexOf(34, q + 1);
      const b = e - q - 1;
      count = Math.floor(b / 4) * 3 - (line[e - 1] === 61 ? 1 : 0) - (line[e - 2] === 61 ? 1 : 0);
    }
    return [`{"return": {"count": ${count}, "eof": false}}\n`];
  }
  return ['{"return": {}}\n'];
}

const path = process.argv[2];
try { fs.unlinkSync(path); } catch { /* not there */ }
net.createServer({ pauseOnConnect: false }, (sock) => {
  let parts = [];
  sock.on('data', (chunk) => {
    const out = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      let line = chunk.subarray(start, nl);
      if (parts.length) { parts.push(line); line = Buffer.concat(parts); parts = []; }
      out.push(...answer(line));
      start = nl + 1;
    }
    if (start < chunk.length) parts.push(chunk.subarray(start));
    if (out.length) sock.cork(), out.forEach((c) => sock.write(c, 'latin1')), sock.uncork();
  });
  sock.on('error', () => {});
}).listen(path);
