/**
 * The unix-listen reply path under stress: quick replies sent without waiting (Agent.drain's
 * synchronous path, UnixListenChannel.send), back-pressure when the client stops reading,
 * a client vanishing with replies still owed, and the next client served cleanly. Runs on
 * both backends.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { availableBackends, startAgent, rawExchange, type TestAgent } from './helpers/agent';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Enough guest-sync replies (~1 MiB) to fill the socket buffers several times over. */
const FLOOD = 50_000;

function syncRequests(from: number, count: number): string {
  let s = '';
  for (let i = from; i < from + count; i++) s += `{"execute":"guest-sync","arguments":{"id":${i}}}`;
  return s;
}

function syncReplies(from: number, count: number): string {
  let s = '';
  for (let i = from; i < from + count; i++) s += `{"return": ${i}}\n`;
  return s;
}

/** Writes everything, reads nothing for `stallMs`, then collects `bytes` bytes of replies. */
function stalledExchange(sock: string, data: string, bytes: number, stallMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    s.pause();
    const parts: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`timeout after ${got} of ${bytes} bytes`)); }, 60_000);
    s.on('connect', () => { s.write(data); setTimeout(() => s.resume(), stallMs); });
    s.on('data', (d: Buffer) => {
      parts.push(d);
      got += d.length;
      if (got >= bytes) { clearTimeout(timer); s.destroy(); resolve(Buffer.concat(parts).toString('latin1')); }
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

for (const kind of availableBackends()) {
  const test = suite(`unix-listen reply path (${kind})`);
  let t: TestAgent;
  test.before(async () => { t = await startAgent(kind); });
  test.after(async () => { await t.stop(); fs.rmSync(t.dir, { recursive: true, force: true }); });

  test('a client that stops reading holds the agent back; every reply then arrives, in order', async () => {
    const expected = syncReplies(0, FLOOD);
    const got = await stalledExchange(t.sock, syncRequests(0, FLOOD), expected.length, 300);
    assert.is(got.length, expected.length);
    assert.ok(got === expected, 'replies differ from the expected sequence');
  });

  test('pings and syncs interleaved in one chunk: replies batched, in order, byte-exact', async () => {
    const req = '{"execute":"guest-ping"}{"execute":"guest-sync","arguments":{"id":7}}{"execute":"guest-ping","id":"x"}'
      + '{"execute":"guest-ping"}{"execute":"guest-sync-delimited","arguments":{"id":8}}';
    const got = await rawExchange(t.sock, req, 5);
    assert.is(got.toString('latin1'), '{"return": {}}\n{"return": 7}\n{"return": {}, "id": "x"}\n{"return": {}}\n\xff{"return": 8}\n');
  });

  test('a client gone with replies owed (back-pressure) does not stop the agent; the next one is served', async () => {
    for (let round = 0; round < 3; round++) {
      const s = net.connect(t.sock);
      s.pause();
      await new Promise<void>((resolve, reject) => { s.on('connect', () => resolve()); s.on('error', reject); });
      // Not all of it is taken: the agent stops reading while its replies are not read.
      s.write(syncRequests(0, FLOOD));
      await sleep(200);
      s.destroy();
    }
    const got = await rawExchange(t.sock, syncRequests(100, 3) + '{"execute":"guest-ping"}', 4);
    assert.is(got.toString('latin1'), syncReplies(100, 3) + '{"return": {}}\n');
  });

  test.run();
}
