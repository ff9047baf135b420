/**
 * The watcher's spin after an idle callback (native/fd_watch.cc spinAfter, used by FdSocket for
 * the unix-listen client): a host that sends its next request right after each reply is caught
 * without the agent's thread going back to epoll, every request is still answered exactly once
 * and in order, and nothing spins while the agent is busy. The client is another process, so
 * it can answer while this one spins.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { FdSocket, loadFdSocketIo } from '../lib/transport/fd-socket';
import { tempDir } from './helpers/agent';

const io = loadFdSocketIo();
const ROUNDS = 200;

/** A client process: sends "qN\n", waits for "aN\n", ROUNDS times; prints what it got. */
const CLIENT = `
const s = require('node:net').connect(process.argv[1]);
let n = 0, buf = '', got = [];
s.on('connect', () => s.write('q0\\n'));
s.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    got.push(buf.slice(0, i)); buf = buf.slice(i + 1);
    if (++n < ${ROUNDS}) s.write('q' + n + '\\n'); else { console.log(JSON.stringify(got)); s.end(); }
  }
});`;

async function serveOne(idle: () => boolean): Promise<{ replies: string[]; requests: string[]; stats: { spins: number; caught: number } }> {
  const dir = tempDir('spin-');
  const sock = path.join(dir, 'sock');
  const requests: string[] = [];
  let stats = { spins: 0, caught: 0 };
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  const served = new Promise<void>((resolve) => {
    server.on('connection', (s) => {
      const fd = (s as unknown as { _handle: { fd: number } })._handle.fd;
      let pending = '';
      const conn: FdSocket = new FdSocket(io!, fd, {
        data: (d) => {
          pending += d.toString('latin1');
          let i;
          while ((i = pending.indexOf('\n')) >= 0) {
            const q = pending.slice(0, i);
            pending = pending.slice(i + 1);
            requests.push(q);
            void conn.send([`a${q.slice(1)}\n`]);
          }
        },
        end: () => { stats = conn.spinStats(); conn.end(); },
        closed: () => { s.destroy(); resolve(); },
        idle,
      });
      conn.setReading(true);
    });
  });
  const child = spawn(process.execPath, ['-e', CLIENT, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  await new Promise((resolve) => child.on('exit', resolve));
  await served;
  server.close();
  return { replies: JSON.parse(out) as string[], requests, stats };
}

if (io) {
  test('an idle agent catches the next request by spinning; every request answered once, in order', async () => {
    const r = await serveOne(() => true);
    assert.equal(r.requests, Array.from({ length: ROUNDS }, (_, i) => `q${i}`));
    assert.equal(r.replies, Array.from({ length: ROUNDS }, (_, i) => `a${i}`));
    assert.ok(r.stats.spins >= ROUNDS - 1, `spins ${r.stats.spins}`);
    // Under load some requests come later than the spin lasts; many must still be caught.
    assert.ok(r.stats.caught >= ROUNDS / 10, `caught ${r.stats.caught} of ${ROUNDS}`);
    console.log(`  spin: ${r.stats.caught} of ${r.stats.spins} spins caught the next request`);
  });

  test('a busy agent never spins (the loop must get on with its work)', async () => {
    const r = await serveOne(() => false);
    assert.equal(r.replies, Array.from({ length: ROUNDS }, (_, i) => `a${i}`));
    assert.equal(r.stats, { spins: 0, caught: 0 });
  });
} else {
  console.log('SKIP test/transport-spin.test.ts: the addon has no fd socket I/O here');
}

test.run();
