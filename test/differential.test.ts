/**
 * Differential test: Debian's qemu-ga and node-qga side by side on unix sockets, fed the same
 * byte stream (sync, ping, info, time, every file command on temp files, malformed input);
 * replies compared byte for byte, except values that differ by nature (time, version, the
 * command list), compared by type and range.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { availableBackends, startAgent, tempDir } from './helpers/agent';
import { parseReply } from '../lib/client';

const QEMU_GA = '/usr/sbin/qemu-ga';

/** One connection that sends a case, then a marker sync, and returns every line up to the marker reply. */
class Session {
  private parts: Buffer[] = [];
  private wake?: () => void;
  private marker = 424242;
  constructor(private sock: net.Socket) { sock.on('data', (d) => { this.parts.push(d); this.wake?.(); }); }
  static open(p: string): Promise<Session> {
    return new Promise((resolve, reject) => { const s = net.connect(p, () => resolve(new Session(s))); s.once('error', reject); });
  }
  async exchange(bytes: Buffer | string): Promise<string> {
    const id = ++this.marker;
    const end = `{"return": ${id}}\n`;
    this.sock.write(bytes);
    // 0xFF flushes whatever half request the case left; its own error reply is part of the transcript.
    this.sock.write(Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"execute":"guest-sync","arguments":{"id":${id}}}`)]));
    const deadline = Date.now() + 20000;
    for (;;) {
      const text = Buffer.concat(this.parts).toString('latin1');
      const at = text.indexOf(end);
      if (at >= 0) { this.parts = [Buffer.from(text.slice(at + end.length), 'latin1')]; return text.slice(0, at); }
      if (Date.now() > deadline) throw new Error(`no marker; got ${JSON.stringify(text.slice(0, 300))}`);
      await new Promise<void>((r) => { this.wake = r; setTimeout(r, 100); });
    }
  }
  close(): void { this.sock.destroy(); }
}

async function waitForSocket(p: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (fs.existsSync(p)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${p} never appeared`);
}

const FILE = 'difffile';
function cases(dir: string): Array<[string, string | Buffer]> {
  const f = path.join(dir, FILE);
  const open = (mode: string) => `{"execute":"guest-file-open","arguments":{"path":"${f}","mode":"${mode}"}}`;
  return [
    ['sync', '{"execute":"guest-sync","arguments":{"id":12345678901234}}'],
    ['sync-delimited', '{"execute":"guest-sync-delimited","arguments":{"id":-5},"id":"x"}'],
    ['ping with id', '{"execute":"guest-ping","id":{"b":[1,2.5,"s"],"a":null}}'],
    ['fsfreeze-status', '{"execute":"guest-fsfreeze-status"}'],
    ['unknown command', '{"execute":"guest-nonexist","id":5}'],
    ['bad envelope', '{"exec":"guest-ping"}{}{"id":1}[1,2]"str" true {"execute":"guest-ping","arguments":[]}{"execute":1,"foo":1}{"execute":"guest-ping","arguments":1,"zzz":2}'],
    ['bad arguments', '{"execute":"guest-sync"}{"execute":"guest-sync","arguments":{"id":"1"}}{"execute":"guest-sync","arguments":{"id":1.5}}{"execute":"guest-sync","arguments":{"id":9223372036854775808}}{"execute":"guest-ping","arguments":{"foo":42}}{"execute":"guest-sync","arguments":{"id":1,"x":2}}'],
    ['lexer errors', Buffer.from('{"execute":"gue\xffst-ping"} -\n01\n\x04 % {"a":1,} {1:2} {"a" 1} {"a":1 "b":2} [1 2] {"a":1,"a":2} "\\q" "\xc3\x28" "\\ud800" garbage [01] 1e ', 'latin1')],
    ['strings', `{'execute':'guest-ping'}{"execute":"guest-\\u0070ing"}{"execute":"guest-ping","id":"\\u00e9\\ud83d\\ude00\\n\\t\\u0001/"}`],
    ['numbers echoed', '{"execute":"guest-ping","id":[0.1,1e3,-0,18446744073709551615,18446744073709551616,1.5e300,123456789012345678901234567890]}'],
    ['nesting limit', '['.repeat(1025)],
    ['0xFF inside a large payload', Buffer.concat([Buffer.from(`{"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"${'QUJD'.repeat(50000)}`), Buffer.from([0xff]), Buffer.from('QUJD"}}{"execute":"guest-ping","id":"after"}')])],
    ['escapes inside a large payload', `{"execute":"guest-sync","arguments":{"id":1,"junk":"${'QUJD\\n'.repeat(20000)}"}}{"execute":"guest-ping"}`],
    ['file open errors', `{"execute":"guest-file-open","arguments":{"path":"${f}","mode":"rw"}}{"execute":"guest-file-open","arguments":{"path":"${f}"}}{"execute":"guest-file-open","arguments":{"path":"${f}","mode":null}}`],
    ['file write/read/seek', [
      open('w+'),
      '{"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"SGVsbG8gV29ybGQhCgA="}}',
      '{"execute":"guest-file-read","arguments":{"handle":1000}}',
      '{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":"set"}}',
      '{"execute":"guest-file-read","arguments":{"handle":1000,"count":5},"id":7}',
      '{"execute":"guest-file-read","arguments":{"handle":1000}}',
      '{"execute":"guest-file-read","arguments":{"handle":1000,"count":0}}',
      '{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":6,"whence":0}}',
      '{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":-2,"whence":"end"}}',
      '{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":"cur"}}',
      '{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":1,"whence":3}}',
      '{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":1,"whence":"bogus"}}',
      '{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":1,"whence":true}}',
      '{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":1.5,"whence":0}}',
      '{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":-1,"whence":0}}',
      '{"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"!!!!"}}',
      '{"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"aGVsbG8"}}',
      '{"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"aGVs\\nbG8=\\n","count":5}}',
      '{"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"QUJD","count":4}}',
      '{"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":""}}',
      '{"execute":"guest-file-read","arguments":{"handle":1000,"count":-1}}',
      '{"execute":"guest-file-read","arguments":{"handle":1000,"count":50331649}}',
      '{"execute":"guest-file-flush","arguments":{"handle":1000}}',
      '{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":"set"}}',
      '{"execute":"guest-file-read","arguments":{"handle":1000,"count":100}}',
      '{"execute":"guest-file-close","arguments":{"handle":1000}}',
      '{"execute":"guest-file-close","arguments":{"handle":1000}}',
      '{"execute":"guest-file-read","arguments":{"handle":1000}}',
    ].join('')],
    ['file read-only handle', [
      open('r'),
      '{"execute":"guest-file-write","arguments":{"handle":1001,"buf-b64":"QUJD"}}',
      '{"execute":"guest-file-read","arguments":{"handle":1001,"count":3}}',
      '{"execute":"guest-file-close","arguments":{"handle":1001}}',
      open('a'),
      '{"execute":"guest-file-read","arguments":{"handle":1002}}',
      '{"execute":"guest-file-write","arguments":{"handle":1002,"buf-b64":"QUJD"}}',
      '{"execute":"guest-file-close","arguments":{"handle":1002}}',
      `{"execute":"guest-file-open","arguments":{"path":"${dir}","mode":"r"}}`,
      '{"execute":"guest-file-read","arguments":{"handle":1003}}',
      '{"execute":"guest-file-close","arguments":{"handle":1003}}',
    ].join('')],
  ];
}

async function transcript(sock: string, list: Array<[string, string | Buffer]>): Promise<Map<string, string>> {
  const s = await Session.open(sock);
  const out = new Map<string, string>();
  try {
    await s.exchange('');
    for (const [name, bytes] of list) out.set(name, await s.exchange(bytes));
    out.set('time', await s.exchange('{"execute":"guest-get-time"}'));
    out.set('info', await s.exchange('{"execute":"guest-info"}'));
  } finally { s.close(); }
  return out;
}

const diff = suite('differential: qemu-ga vs node-qga');
let qga: ChildProcess | undefined;
let qgaDir = '';
let expected: Map<string, string> | undefined;
let dataDir = '';

diff.before(async () => {
  if (!fs.existsSync(QEMU_GA)) { console.log(`  SKIP differential tests: ${QEMU_GA} is not installed (apt-get install qemu-guest-agent)`); return; }
  dataDir = tempDir('qga-diff-data-');
  qgaDir = tempDir('qga-diff-ref-');
  qga = spawn(QEMU_GA, ['-m', 'unix-listen', '-p', path.join(qgaDir, 'sock'), '-t', qgaDir], { cwd: qgaDir, stdio: 'ignore' });
  await waitForSocket(path.join(qgaDir, 'sock'));
  expected = await transcript(path.join(qgaDir, 'sock'), cases(dataDir));
  fs.rmSync(path.join(dataDir, FILE), { force: true });
});
// SIGKILL: qemu-ga 7.2 can deadlock in its own SIGTERM handler, and a live child would keep this process from exiting.
diff.after(() => { if (qga?.pid) qga.kill('SIGKILL'); });

for (const backend of availableBackends()) {
  diff(`${backend}: every reply byte for byte, natured values by type`, async () => {
    if (!expected) return;
    const t = await startAgent(backend);
    let got: Map<string, string>;
    try {
      got = await transcript(t.sock, cases(dataDir));
    } finally {
      await t.stop();
      fs.rmSync(path.join(dataDir, FILE), { force: true });
    }
    for (const [name] of cases(dataDir)) assert.is(got.get(name), expected.get(name), name);

    const time = (s: string) => BigInt(parseReply(s.split('\n')[0]).return);
    assert.ok(time(got.get('time')!) - time(expected.get('time')!) < 60_000_000_000n);
    assert.is(time(got.get('time')!) % 1000n, 0n);

    const info = (s: string) => parseReply(s.split('\n')[0]).return;
    const ours = info(got.get('info')!);
    const theirs = info(expected.get('info')!);
    assert.type(ours.version, 'string');
    const mine = new Map<string, { enabled: boolean }>(ours.supported_commands.map((c: { name: string }) => [c.name, c]));
    const theirNames = theirs.supported_commands.map((c: { name: string }) => c.name) as string[];
    // The 2.4 contract's commands are all present, with the same flags as qemu-ga's.
    for (const c of theirs.supported_commands as Array<{ name: string; enabled: boolean }>) {
      const m = mine.get(c.name);
      if (!m) continue;
      assert.equal(m, c, c.name);
    }
    // Relative order of the shared commands is the same (reverse registration order).
    const shared = theirNames.filter((n) => mine.has(n));
    assert.equal([...mine.keys()].filter((n) => theirNames.includes(n)), shared);
  });
}

diff.run();
