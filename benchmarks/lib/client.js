'use strict';
/**
 * The benchmark's own client: a raw unix socket, replies split into lines on Buffers, no JSON
 * parsing of replies (callers check the bytes they need). Requests are Buffers written as is.
 * Kept this lean so that the agent, not the client, is what the figures measure; the echo
 * server (benchmarks/echo-server.c) measures how fast this client can go at all.
 */
const net = require('node:net');
const { performance } = require('node:perf_hooks');

const readBuffer = Buffer.alloc(4 * 1024 * 1024);
/** Where a reply spanning several reads is assembled; shared by all clients (one talks at a time). */
const assembly = { buf: Buffer.alloc(1 << 20) };

class LeanClient {
  /** Connects, retrying while the socket does not exist yet or refuses (agent still starting). */
  static async connect(path, { timeoutMs = 10000, retryMs = 1 } = {}) {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise((resolve, reject) => {
          // Reads land in one static buffer (no allocation per read): on a VM where first-touching
          // fresh memory costs ~200 MB/s, per-read or per-reply allocations would cap the client.
          const s = net.createConnection({ path, onread: { buffer: readBuffer, callback: (n, buf) => { s.emit('bytes', buf, n); } } });
          s.once('connect', () => { s.removeListener('error', reject); resolve(s); });
          s.once('error', reject);
        });
        return new LeanClient(sock);
      } catch (e) {
        if (!['ENOENT', 'ECONNREFUSED', 'EAGAIN'].includes(e.code) || performance.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, retryMs));
      }
    }
  }

  constructor(sock) {
    this.sock = sock;
    sock.setNoDelay?.(true);
    /** Waiters for single replies, in request order: { resolve, reject }. */
    this.waiting = [];
    /** When set, lines go to this callback instead of `waiting` (pipelined runs). */
    this.sink = null;
    this.lineLen = 0;
    this.closed = false;
    sock.on('bytes', (buf, n) => this.onData(buf.subarray(0, n)));
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new Error('connection closed by the agent')));
  }

  fail(e) {
    this.closed = true;
    const w = this.waiting;
    this.waiting = [];
    for (const x of w) x.reject(e);
    if (this.sink) { const s = this.sink; this.sink = null; s.reject(e); }
  }

  /** Makes room for replies of `bytes` up front (zero-filled, so its pages are touched now, untimed). */
  static reserve(bytes) {
    if (assembly.buf.length < bytes) assembly.buf = Buffer.alloc(bytes);
  }

  get lineBuf() { return assembly.buf; }

  append(part) {
    const need = this.lineLen + part.length;
    if (need > assembly.buf.length) {
      const bigger = Buffer.alloc(Math.max(need, assembly.buf.length * 2));
      assembly.buf.copy(bigger, 0, 0, this.lineLen);
      assembly.buf = bigger;
    }
    part.copy(assembly.buf, this.lineLen);
    this.lineLen = need;
  }

  /**
   * `chunk` is a view of the static read buffer, valid only during this call. A line handed to
   * a sink is such a view (sinks check it synchronously); a line resolving `request()` is a
   * copy when small, and a view of lineBuf when it was assembled from several reads (valid
   * until the next reply arrives: callers check it before sending the next request).
   */
  onData(chunk) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) {
        if (start < chunk.length) this.append(chunk.subarray(start));
        return;
      }
      let line;
      let stable;
      if (this.lineLen > 0) {
        this.append(chunk.subarray(start, nl));
        line = this.lineBuf.subarray(0, this.lineLen);
        this.lineLen = 0;
        stable = true;
      } else {
        line = chunk.subarray(start, nl);
        stable = false;
      }
      start = nl + 1;
      if (this.sink) this.sink.line(line);
      else {
        const w = this.waiting.shift();
        if (w) w.resolve({ line: stable ? line : Buffer.from(line), t: performance.now() });
      }
    }
  }

  /**
   * One round trip: resolves with { line (without '\n'), t (arrival time, performance.now()) }.
   * `buf` may be an array of Buffers, written back to back without concatenating them.
   */
  request(buf) {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (Array.isArray(buf)) {
        this.sock.cork();
        for (const b of buf) this.sock.write(b);
        this.sock.uncork();
      } else {
        this.sock.write(buf);
      }
    });
  }

  /**
   * Writes `payload` (many requests back to back) and resolves when `expected` lines have come
   * back, calling `check(line)` on each; resolves with the completion time.
   */
  pipeline(payload, expected, check) {
    return new Promise((resolve, reject) => {
      let left = expected;
      this.sink = {
        reject,
        line: (line) => {
          check(line);
          if (--left === 0) { this.sink = null; resolve(performance.now()); }
        },
      };
      this.sock.write(payload);
    });
  }

  /**
   * Sequential round trips without a Promise per request: each reply's arrival writes the next
   * request from inside the data callback. `next(i)` gives request i, `check(line, i)` checks
   * reply i. Resolves with the per-request latencies (ms, Float64Array).
   */
  sequence(count, next, check) {
    const lat = new Float64Array(count);
    return new Promise((resolve, reject) => {
      let i = 0;
      let sent = 0;
      this.sink = {
        reject,
        line: (line) => {
          const now = performance.now();
          lat[i] = now - sent;
          try { check(line, i); } catch (e) { this.sink = null; reject(e); return; }
          if (++i === count) { this.sink = null; resolve(lat); return; }
          sent = performance.now();
          this.sock.write(next(i));
        },
      };
      sent = performance.now();
      this.sock.write(next(0));
    });
  }

  close() {
    this.closed = true;
    this.sock.removeAllListeners('close');
    this.sock.destroy();
  }
}

module.exports = { LeanClient };
