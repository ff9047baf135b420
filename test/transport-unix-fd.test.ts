/**
 * The unix-listen client driven through its descriptor (FdSocket: the addon's watcher,
 * non-blocking read and sendmsg) and through net.Socket (NODE_QGA_FD_WATCH=poll): partial
 * writes and EAGAIN under a slow reader, a large zero-copy read reply, a client gone
 * mid-reply, clients one after another (no descriptor left behind), EOF after requests,
 * later clients waiting. Runs on both backends.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { availableBackends, startAgent, rawExchange, type TestAgent } from './helpers/agent';
import { UnixListenChannel } from '../lib/transport/unix';
import { loadFdSocketIo } from '../lib/transport/fd-socket';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const BIG = 6 * 1024 * 1024;

function connected(sock: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads `lines` newline-terminated replies from `s`, taking `chunk` bytes every `delayMs` (a slow reader). */
function slowRead(s: net.Socket, lines: number, chunk: number, delayMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let count = 0;
    const timer = setTimeout(() => reject(new Error('timeout')), 60_000);
    const pump = () => {
      let d: Buffer | null;
      while ((d = s.read(chunk) ?? s.read()) !== null) {
        parts.push(d);
        for (const b of d) if (b === 0x0a) count++;
        if (count >= lines) { clearTimeout(timer); resolve(Buffer.concat(parts)); return; }
        if (delayMs > 0) { setTimeout(pump, delayMs); return; }
      }
      s.once('readable', pump);
    };
    s.once('error', (e) => { clearTimeout(timer); reject(e); });
    pump();
  });
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

const drivers: Array<'fd' | 'stream'> = ['stream'];
if (loadFdSocketIo()) drivers.unshift('fd');
else console.log('  (the addon has no fd socket I/O here: the fd driver runs are skipped)');

for (const kind of availableBackends()) {
  for (const driver of drivers) {
    const test = suite(`unix-listen client via ${driver} (${kind})`);
    let t: TestAgent;
    let file: string;
    let content: Buffer;
    test.before(async () => {
      const saved = process.env.NODE_QGA_FD_WATCH;
      if (driver === 'stream') process.env.NODE_QGA_FD_WATCH = 'poll';
      try { t = await startAgent(kind); } finally {
        if (saved === undefined) delete process.env.NODE_QGA_FD_WATCH; else process.env.NODE_QGA_FD_WATCH = saved;
      }
      file = path.join(t.dir, 'big');
      content = crypto.randomBytes(BIG);
      fs.writeFileSync(file, content);
    });
    test.after(async () => { await t.stop(); fs.rmSync(t.dir, { recursive: true, force: true }); });

    test('the channel uses the driver under test', () => {
      assert.is((t.agent.channel as UnixListenChannel).driver, driver);
    });

    test('slow reader: a large read reply and many small ones arrive whole, in order (EAGAIN, partial writes)', async () => {
      const s = await connected(t.sock);
      s.pause();
      s.write('{"execute":"guest-file-open","arguments":{"path":' + JSON.stringify(file) + '}}');
      const open = await slowRead(s, 1, 65536, 0);
      const handle = JSON.parse(open.toString()).return as number;
      let req = `{"execute":"guest-file-read","arguments":{"handle":${handle},"count":${BIG}}}`;
      for (let i = 0; i < 2000; i++) req += `{"execute":"guest-sync","arguments":{"id":${i}}}`;
      req += `{"execute":"guest-file-close","arguments":{"handle":${handle}}}`;
      s.write(req);
      await sleep(100); // the socket buffer fills: the agent is left with EAGAIN and a queue
      const got = (await slowRead(s, 2002, 256 * 1024, 2)).toString('latin1').split('\n');
      s.destroy();
      const read = JSON.parse(got[0]).return;
      assert.is(read.count, BIG);
      assert.ok(Buffer.from(read['buf-b64'], 'base64').equals(content), 'read data differs from the file');
      for (let i = 0; i < 2000; i++) assert.is(got[1 + i], `{"return": ${i}}`);
      assert.is(got[2001], '{"return": {}}');
    });

    test('a client gone mid-reply does not stop the agent; the next client is served', async () => {
      for (let round = 0; round < 3; round++) {
        const s = await connected(t.sock);
        s.pause();
        s.write('{"execute":"guest-file-open","arguments":{"path":' + JSON.stringify(file) + '}}');
        const handle = JSON.parse((await slowRead(s, 1, 65536, 0)).toString()).return as number;
        s.write(`{"execute":"guest-file-read","arguments":{"handle":${handle},"count":${BIG}}}`);
        await new Promise((r) => s.once('readable', r)); // the reply has started
        s.read(1000);
        s.destroy();
      }
      const got = await rawExchange(t.sock, '{"execute":"guest-ping"}{"execute":"guest-sync","arguments":{"id":5}}', 2);
      assert.is(got.toString('latin1'), '{"return": {}}\n{"return": 5}\n');
    });

    test('many clients in a row, each answered; no descriptor left behind', async () => {
      await rawExchange(t.sock, '{"execute":"guest-ping"}', 1);
      await sleep(50);
      const before = openFds();
      for (let i = 0; i < 200; i++) {
        const got = await rawExchange(t.sock, `{"execute":"guest-sync","arguments":{"id":${i}}}{"execute":"guest-ping"}`, 2);
        assert.is(got.toString('latin1'), `{"return": ${i}}\n{"return": {}}\n`);
      }
      await sleep(100);
      assert.ok(openFds() <= before + 2, `descriptors: ${before} before, ${openFds()} after`);
    });

    test('EOF after the requests: all answered, then the agent closes; a waiting client goes next', async () => {
      const first = await connected(t.sock);
      const second = await connected(t.sock);
      const secondReply = new Promise<string>((resolve) => {
        let text = '';
        second.on('data', (d) => { text += d.toString('latin1'); if (text.endsWith('\n')) resolve(text); });
      });
      second.write('{"execute":"guest-sync","arguments":{"id":2}}');
      await sleep(50);
      const firstText = new Promise<string>((resolve) => {
        let text = '';
        first.on('data', (d) => { text += d.toString('latin1'); });
        first.on('end', () => resolve(text));
      });
      first.end(Buffer.from('{"execute":"guest-ping"}{"execute":"guest-sync","arguments":{"id":1}}\xff{"execute":"guest-sync-delimited","arguments":{"id":3}}', 'latin1'));
      // 0xFF is a lexer error (answered, as qemu-ga does) and the resync before the delimited reply.
      const lines = (await firstText).split('\n');
      assert.equal([lines[0], lines[1], lines[3], lines[4]], ['{"return": {}}', '{"return": 1}', '\xff{"return": 3}', '']);
      assert.ok(lines[2].startsWith('{"error": {"class": "GenericError", "desc": "JSON parse error, stray '), lines[2]);
      assert.is(await secondReply, '{"return": 2}\n');
      first.destroy();
      second.destroy();
    });

    test.run();
  }
}
