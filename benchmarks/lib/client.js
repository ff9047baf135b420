'use strict';
/**
 * The benchmark's own client: a raw unix socket, replies split into lines on Buffers, no JSON
 * parsing of replies (callers check the bytes they need). Requests are Buffers written as is.
 * Kept this lean so that the agent, not the client, is what the figures measure; the echo
 * server (benchmarks/echo-server.c) measures how fast this client can go at all.
 */
const net = require('node:net');
const { performance } = require('node:perf_hooks');

class LeanClient {
  /** Connects, retrying while the socket does not exist yet or refuses (agent still starting). */
  static async connect(path, { timeoutMs = 10000, retryMs = 1 } = {}) {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise((resolve, reject) => {
          const s = net.createConnection(path);
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
    this.parts = [];
    this.closed = false;
    sock.on('data', (chunk) => this.onData(chunk));
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

  onData(chunk) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) {
        if (start < chunk.length) this.parts.push(start === 0 ? chunk : chunk.subarray(start));
        return;
      }
      let line;
      if (this.parts.length > 0) {
        this.parts.push(chunk.subarray(start, nl));
        line = Buffer.concat(this.parts);
        this.parts = [];
      } else {
        line = chunk.subarray(start, nl);
      }
      start = nl + 1;
      if (this.sink) this.sink.line(line);
      else {
        const w = this.waiting.shift();
        if (w) w.resolve({ line, t: performance.now() });
      }
    }
  }

  /** One round trip: resolves with { line (without '\n'), t (arrival time, performance.now()) }. */
  request(buf) {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.sock.write(buf);
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

  close() {
    this.closed = true;
    this.sock.removeAllListeners('close');
    this.sock.destroy();
  }
}

module.exports = { LeanClient };
