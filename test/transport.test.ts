/**
 * Device transports with a pseudo-terminal pair standing in for the device: virtio-serial
 * (hang-up when the host goes away, 10 Hz polling, retry-path reopening) and isa-serial (raw
 * line settings). The built agent (dist/cli.js) runs as a child process.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { PtyHost, Proc, startAgentProcess, ptyUnavailable, cpuTicks, sleep, until } from './helpers/transport-host';
import { parseVsockAddress } from '../lib/transport/vsock';

const skipReason = ptyUnavailable();
if (skipReason) console.log(`  SKIPPED transport pty tests: ${skipReason}`);

interface Ctx { dir: string; procs: Array<Proc | PtyHost> }
const ctx: Ctx = { dir: '', procs: [] };

function setup(name: string) {
  const s = suite(name);
  s.before.each(() => { ctx.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-transport-')); ctx.procs = []; });
  s.after.each(async () => {
    for (const p of ctx.procs.reverse()) await (p instanceof PtyHost ? p.close() : p.stop());
    fs.rmSync(ctx.dir, { recursive: true, force: true });
  });
  return s;
}

async function host(link: string, raw: boolean): Promise<PtyHost> {
  const h = await PtyHost.open(link, { raw });
  ctx.procs.push(h);
  return h;
}

function agent(args: string[]): Proc {
  const p = startAgentProcess(['-v', '-t', ctx.dir, ...args]);
  ctx.procs.push(p);
  return p;
}

/** CPU ticks (1/100 s) the process used over `ms`. */
async function cpuOver(pid: number, ms: number): Promise<number> {
  const a = cpuTicks(pid);
  await sleep(ms);
  return cpuTicks(pid) - a;
}

// ------------------------------------------------------------------ virtio-serial

const virtio = setup('virtio-serial');

virtio('serves requests on the device: sync-delimited, ping, info, pipelined and split requests', async () => {
  if (skipReason) return;
  const port = path.join(ctx.dir, 'port');
  const h = await host(port, true);
  const a = agent(['-m', 'virtio-serial', '-p', port]);
  await a.waitStderr(/listening on virtio-serial/);
  await h.sync(101);
  assert.equal(await h.call({ execute: 'guest-ping' }), { return: {} });
  const info = await h.call({ execute: 'guest-info', id: 'x' });
  assert.equal(info.id, 'x');
  assert.ok(info.return.supported_commands.some((c: any) => c.name === 'guest-ping'));
  // Two requests in one write, then one request split over three writes.
  h.send('{"execute":"guest-sync","arguments":{"id":1}}{"execute":"guest-sync","arguments":{"id":2}}\n');
  assert.equal(await h.readReply(), { return: 1 });
  assert.equal(await h.readReply(), { return: 2 });
  h.send('{"exec');
  await sleep(50);
  h.send('ute":"guest-sy');
  await sleep(50);
  h.send('nc","arguments":{"id":77}}\n');
  assert.equal(await h.readReply(), { return: 77 });
});

virtio('a large reply reaches the host whole (partial writes are continued)', async () => {
  if (skipReason) return;
  const port = path.join(ctx.dir, 'port');
  const h = await host(port, true);
  const data = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
  const file = path.join(ctx.dir, 'big.bin');
  fs.writeFileSync(file, data);
  const a = agent(['-m', 'virtio-serial', '-p', port]);
  await a.waitStderr(/listening on virtio-serial/);
  await h.sync(7);
  const handle = (await h.call({ execute: 'guest-file-open', arguments: { path: file } })).return;
  const r = await h.call({ execute: 'guest-file-read', arguments: { handle, count: data.length } }, 30000);
  assert.is(r.return.count, data.length);
  assert.ok(Buffer.from(r.return['buf-b64'], 'base64').equals(data));
  assert.equal(await h.call({ execute: 'guest-ping' }), { return: {} });
});

virtio('SIGTERM ends the agent (exit 0) while a connected host is quiet: no read left parked', async () => {
  if (skipReason) return;
  const port = path.join(ctx.dir, 'port');
  const h = await host(port, true);
  const a = agent(['-m', 'virtio-serial', '-p', port]);
  await a.waitStderr(/listening on virtio-serial/);
  await h.sync(1);
  await sleep(300); // idle: the channel is waiting for the next request
  process.kill(a.pid, 'SIGTERM');
  const code = await Promise.race([a.exited, sleep(5000).then(() => 'hung' as const)]);
  assert.is(code, 0, `agent did not exit on SIGTERM (${code})`);
});

virtio('host hang-up: the agent neither spins nor exits, and warns that the path is gone', async () => {
  if (skipReason) return;
  const port = path.join(ctx.dir, 'port');
  const h = await host(port, true);
  const a = agent(['-m', 'virtio-serial', '-p', port]);
  await a.waitStderr(/listening on virtio-serial/);
  await h.sync(1);
  await h.close();
  await a.waitStderr(/host not connected on virtio-serial/);
  const ticks = await cpuOver(a.pid, 1000);
  console.log(`    CPU while the host is away: ${ticks} ticks (1/100 s) over 1 s`);
  assert.ok(ticks < 25, `agent used ${ticks}/100 s of CPU in 1 s while hung up`);
  await a.waitStderr(/channel path disappeared .*use -r\/--retry-path/);
  assert.ok(a.alive, 'agent exited after the host hung up');
});

virtio('--retry-path: a host that reconnects on a new device at the same path is served again', async () => {
  if (skipReason) return;
  const port = path.join(ctx.dir, 'port');
  const h1 = await host(port, true);
  const a = agent(['-r', '-m', 'virtio-serial', '-p', port]);
  await a.waitStderr(/listening on virtio-serial/);
  await h1.sync(1);
  await h1.close();
  await a.waitStderr(/agent stopped unexpectedly, restarting\.\.\.\n.*waiting for channel path\.\.\./);
  const ticks = await cpuOver(a.pid, 1000);
  assert.ok(ticks < 25, `agent used ${ticks}/100 s of CPU in 1 s while waiting`);
  const h2 = await host(port, true);
  await h2.sync(2);
  assert.equal(await h2.call({ execute: 'guest-ping' }), { return: {} });
  assert.ok(a.alive);
});

virtio('--retry-path: a device path deleted and recreated is reopened', async () => {
  if (skipReason) return;
  const port = path.join(ctx.dir, 'port');
  const h1 = await host(port, true);
  const a = agent(['-r', '-m', 'virtio-serial', '-p', port]);
  await a.waitStderr(/listening on virtio-serial/);
  await h1.sync(1);
  fs.unlinkSync(port);
  await h1.close();
  await a.waitStderr(/channel path disappeared/);
  await sleep(700); // a few retries find nothing
  assert.ok((a.stderr.match(/waiting for channel path\.\.\./g) ?? []).length >= 2, a.stderr);
  const h2 = await host(port, true);
  await h2.sync(3);
  assert.equal(await h2.call({ execute: 'guest-ping' }), { return: {} });
});

virtio('--retry-path: the agent starts without its device and opens it when it appears', async () => {
  if (skipReason) return;
  const port = path.join(ctx.dir, 'port');
  const a = agent(['-r', '-m', 'virtio-serial', '-p', port]);
  await a.waitStderr(/error opening channel '.*port': ENOENT[^\n]*\n.*failed to initialize guest agent channel/);
  await a.waitStderr(/waiting for channel path\.\.\./);
  const h = await host(port, true);
  await h.sync(9);
  assert.equal(await h.call({ execute: 'guest-ping' }), { return: {} });
});

virtio('without --retry-path a device that cannot be opened is an error, exit 1', async () => {
  const port = path.join(ctx.dir, 'nope');
  const a = agent(['-m', 'virtio-serial', '-p', port]);
  assert.is(await a.exited, 1);
  assert.match(a.stderr, `error opening channel '${port}': ENOENT`);
});

virtio.run();

// ------------------------------------------------------------------ isa-serial

const isa = setup('isa-serial');

function termiosOf(dev: string): string {
  const r = spawnSync('stty', ['-a', '-F', dev], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

isa('puts the tty in raw mode and serves it: no echo, no CR/LF translation, ^C is just a byte', async () => {
  if (skipReason) return;
  const port = path.join(ctx.dir, 'ttyS0');
  const h = await host(port, false); // a cooked tty: the agent must make it raw itself
  const before = termiosOf(h.slave);
  assert.match(before, /(^|\s)echo(\s|$)/);
  const a = agent(['-m', 'isa-serial', '-p', port]);
  await a.waitStderr(/listening on isa-serial/);
  const t = termiosOf(h.slave);
  for (const flag of ['-echo', '-icanon', '-isig', '-icrnl', '-inlcr', '-igncr', '-istrip', '-ixon', '-ixoff', '-opost', 'cs8', '-parenb', '-iexten', '-parmrk', '-brkint']) {
    assert.ok(new RegExp(`(^|\\s)${flag.replace('-', '\\-')}(\\s|$)`).test(t), `${flag} not set: ${t}`);
  }
  assert.match(t, /min = 1; time = 0/);
  h.send('\x03\r\n'); // with ISIG on this would be SIGINT for the line's owner; here it is a stray byte
  await h.sync(11);
  const out = h.take();
  assert.not.ok(out.toString('latin1').includes('guest-sync-delimited'), 'the tty echoed the request');
  h.send('{"execute":"guest-ping"}\r');
  await until('ping reply', () => h.proc.stdout.toString().includes('{"return": {}}\n'));
  assert.not.ok(h.proc.stdout.includes('\r'), 'a reply contained CR (output processing on)');
  assert.ok(a.alive);
});

isa('hang-up without --retry-path: the agent idles; with it the line is reopened', async () => {
  if (skipReason) return;
  const port = path.join(ctx.dir, 'ttyS0');
  const h1 = await host(port, false);
  const idle = agent(['-m', 'isa-serial', '-p', port, '-t', fs.mkdtempSync(path.join(ctx.dir, 's'))]);
  await idle.waitStderr(/listening on isa-serial/);
  await h1.sync(1);
  await h1.close();
  await idle.waitStderr(/idles without a channel/);
  const ticks = await cpuOver(idle.pid, 1000);
  assert.ok(ticks < 25, `agent used ${ticks}/100 s of CPU in 1 s`);
  assert.ok(idle.alive);

  const h2 = await host(port, false);
  const retry = agent(['-r', '-m', 'isa-serial', '-p', port, '-t', fs.mkdtempSync(path.join(ctx.dir, 's'))]);
  await retry.waitStderr(/listening on isa-serial/);
  await h2.sync(2);
  await h2.close();
  await retry.waitStderr(/agent stopped unexpectedly, restarting/);
  const h3 = await host(port, false);
  await h3.sync(3);
  assert.equal(await h3.call({ execute: 'guest-ping' }), { return: {} });
});

isa('a path that is not a tty is refused', async () => {
  const file = path.join(ctx.dir, 'plain');
  fs.writeFileSync(file, '');
  const a = agent(['-m', 'isa-serial', '-p', file]);
  assert.is(await a.exited, 1);
  assert.match(a.stderr, `error opening channel '${file}': not a terminal`);
});

isa.run();

// ------------------------------------------------------------------ vsock

const vsock = setup('vsock-listen');

vsock('addresses are unsigned decimal CID:PORT', () => {
  assert.equal(parseVsockAddress('3:1234'), { cid: 3, port: 1234 });
  assert.equal(parseVsockAddress('4294967295:0'), { cid: 4294967295, port: 0 });
  for (const bad of ['', '3', ':1', '3:', '-1:2', '3:4294967296', '0x3:1', '3:1:2', ' 3:1', '3:1 ']) {
    assert.is(parseVsockAddress(bad), undefined, bad);
  }
});

vsock('a bad address fails with qemu-ga\'s message, exit 1', async () => {
  const a = agent(['-m', 'vsock-listen', '-p', 'host:1']);
  assert.is(await a.exited, 1);
  assert.match(a.stderr, "error parsing address 'host:1'");
  const b = agent(['-m', 'vsock-listen']);
  assert.is(await b.exited, 1);
  assert.match(b.stderr, 'must specify a path for this channel');
});

vsock('a good address either listens or says clearly that this build cannot', async () => {
  const a = agent(['-m', 'vsock-listen', '-p', '4294967295:5723']);
  const code = await Promise.race([a.exited, sleep(3000).then(() => 'running' as const)]);
  if (code === 'running') {
    assert.match(a.stderr, /listening on vsock-listen/);
  } else {
    assert.is(code, 1);
    assert.match(a.stderr, 'vsock-listen is not supported by this build');
    console.log('    (vsock-listen is not supported by this build: checked the error only)');
  }
});

vsock.run();
