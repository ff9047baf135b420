/**
 * vsock-listen's serving logic (one host at a time, clean parser per host, next host accepted
 * when one leaves), with the addon's socket calls replaced: this machine has no vsock loopback,
 * so each "accepted connection" is the slave of a pty pair whose master plays the host.
 * Listening on a real AF_VSOCK socket is checked when the addon has vsock support.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Agent } from '../lib/agent';
import { defaultConfig } from '../lib/config-types';
import { Logger } from '../lib/log';
import { makeBackend } from './helpers/agent';
import { PtyHost, ptyUnavailable } from './helpers/transport-host';
import { VsockListenChannel, loadVsockNative, type VsockNative } from '../lib/transport/vsock';

const skipReason = ptyUnavailable();
if (skipReason) console.log(`  SKIPPED vsock serving test: ${skipReason}`);

test('vsock-listen serves one host at a time, each with a clean parser', async () => {
  if (skipReason) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-vsock-'));
  const hosts: PtyHost[] = [];
  let agent: Agent | undefined;
  try {
    const pending: Array<(fd: number) => void> = [];
    const ready: number[] = [];
    let listenCalls = 0;
    const fake: VsockNative = {
      vsockListen: (cid, port) => {
        listenCalls++;
        assert.equal([cid, port], [4294967295, 5999]);
        return fs.openSync('/dev/null', 'r');
      },
      vsockAccept: () => new Promise((resolve) => {
        const fd = ready.shift();
        if (fd !== undefined) resolve(fd); else pending.push(resolve);
      }),
    };
    const connectHost = async (name: string) => {
      const h = await PtyHost.open(path.join(dir, name), { raw: true });
      hosts.push(h);
      const fd = fs.openSync(h.slave, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
      const waiter = pending.shift();
      if (waiter) waiter(fd); else ready.push(fd);
      return h;
    };

    const config = { ...defaultConfig(), method: 'vsock-listen' as const, path: '4294967295:5999', statedir: dir };
    const channel = new VsockListenChannel({ cid: 4294967295, port: 5999 }, config.path, fake);
    const connects: number[] = [];
    channel.on('connect', () => connects.push(Date.now()));
    agent = new Agent({ config, backend: makeBackend('fallback', config), channel, log: new Logger(false, path.join(dir, 'log')) });
    await agent.start();
    assert.is(listenCalls, 1);

    const h1 = await connectHost('h1');
    await h1.sync(1);
    assert.equal(await h1.call({ execute: 'guest-ping' }), { return: {} });
    // The second host waits (backlog) while the first is served.
    const h2Promise = connectHost('h2');
    const h2 = await h2Promise;
    await new Promise((r) => setTimeout(r, 200));
    assert.is(h2.proc.stdout.length, 0);
    h2.send('{"execute":"guest-sync","arguments":{"id":22}}\n');
    // The first host leaves in the middle of a request.
    h1.send('{"execute":"guest-sy');
    await new Promise((r) => setTimeout(r, 100));
    await h1.close();
    // The second host's request, queued before it was accepted, is answered intact.
    assert.equal(await h2.readReply(), { return: 22 });
    assert.equal(await h2.call({ execute: 'guest-ping' }), { return: {} });
    assert.is(connects.length, 2);
  } finally {
    await agent?.stop();
    for (const h of hosts) await h.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a real AF_VSOCK listener (when the addon has vsock support)', async () => {
  const native = loadVsockNative();
  if ('error' in native) { console.log(`  SKIPPED real vsock listen: ${native.error}`); return; }
  const port = 20000 + (process.pid % 20000);
  const ch = new VsockListenChannel({ cid: 4294967295, port }, `4294967295:${port}`, native);
  try {
    await ch.start();
    const again = new VsockListenChannel({ cid: 4294967295, port }, `4294967295:${port}`, native);
    let err: Error | undefined;
    try { await again.start(); } catch (e) { err = e as Error; }
    assert.match(String(err?.message), `error listening on vsock '4294967295:${port}': EADDRINUSE`);
  } finally {
    await ch.close();
  }
});

test.run();
