/**
 * SIGKILL at random points (issue 7), against the real agent process (dist/cli.js), on both
 * backends, with a seeded random schedule (NODE_QGA_KILL_SEED to replay one):
 *  (a) while guest-set-user-password rewrites a fixture shadow file (<tmp>/root/etc/shadow via
 *      --shadow-file; the fallback's chpasswd -R edits only that tree): the file is always a
 *      complete old or new version, and a restarted agent sets the password fine;
 *  (b) while guest-fsfreeze-freeze-list freezes several loop-mounted ext4 images (--proc-root
 *      lists only those; root and loop devices needed, skipped visibly otherwise): the restarted
 *      agent either says "frozen" and its thaw thaws everything, or says "thawed" and every loop
 *      takes a write at once. Our loops are always unfrozen, unmounted and detached at the end.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { availableBackends } from './helpers/agent';
import { CLI, requireBuild } from './helpers/transport-host';
import { tmpDir } from './fixtures/system-env';
import { loopUnavailable, makeLoopEnv, writableWithin, type LoopEnv } from './fixtures/loop';

const SEED = Number(process.env.NODE_QGA_KILL_SEED || 20261125);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** mulberry32: a small seeded generator, so a failing schedule can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ------------------------------------------------------------------ the agent process

interface AgentProc { child: ChildProcess; sock: string; stderr: string[]; exited: Promise<void> }
const live = new Set<ChildProcess>();
process.on('exit', () => { for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL'); });

async function startAgent(dir: string, args: string[]): Promise<AgentProc> {
  const sock = path.join(dir, 'qga.sock');
  fs.rmSync(sock, { force: true });
  const child = spawn(process.execPath, [CLI, '-m', 'unix-listen', '-p', sock, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  const stderr: string[] = [];
  child.stderr!.on('data', (d) => stderr.push(String(d)));
  const exited = new Promise<void>((r) => child.once('exit', () => { live.delete(child); r(); }));
  // The socket appears once start-up recovery (waiting for a previous guardian) is done.
  for (let i = 0; i < 800 && !fs.existsSync(sock); i++) {
    if (child.exitCode !== null) break;
    await sleep(25);
  }
  if (!fs.existsSync(sock)) { child.kill('SIGKILL'); throw new Error(`agent did not start: ${stderr.join('')}`); }
  // The file exists from bind(); connections are refused until listen() a moment later.
  for (let i = 0; ; i++) {
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect(sock);
      s.once('connect', () => { s.destroy(); resolve(false); });
      s.once('error', () => resolve(true));
    });
    if (!refused) break;
    if (i >= 200 || child.exitCode !== null) { child.kill('SIGKILL'); throw new Error(`agent does not accept connections: ${stderr.join('')}`); }
    await sleep(25);
  }
  return { child, sock, stderr, exited };
}

async function kill(a: AgentProc): Promise<void> {
  a.child.kill('SIGKILL');
  await a.exited;
}

/** Send request lines on one connection; resolves with the reply lines once `count` arrived. */
function pipeline(sock: string, requests: object[], count = requests.length, timeout = 20_000): { replies: Promise<string[]>; socket: net.Socket } {
  const s = net.connect(sock);
  const replies = new Promise<string[]>((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`timeout; got ${got.slice(0, 300)}`)); }, timeout);
    s.on('connect', () => s.write(requests.map((r) => JSON.stringify(r) + '\n').join('')));
    s.on('data', (d) => {
      got += d.toString('utf8');
      const lines = got.split('\n');
      if (lines.length > count) { clearTimeout(timer); s.destroy(); resolve(lines.slice(0, count)); }
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
    s.on('close', () => { clearTimeout(timer); reject(new Error(`closed; got ${got.slice(0, 300)}`)); });
  });
  replies.catch(() => undefined);
  return { replies, socket: s };
}

async function request(sock: string, execute: string, args?: object): Promise<unknown> {
  const [line] = await pipeline(sock, [args ? { execute, arguments: args } : { execute }]).replies;
  return JSON.parse(line);
}

// ------------------------------------------------------------------ (a) set-user-password

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n';
const GROUP = 'root:x:0:\nalice:x:1000:\nbob:x:1001:\n';
const SHADOW = [
  'root:*:19000:0:99999:7:::',
  'alice:!:19000:0:99999:7:::',
  'bob:$6$bobsalt$bobhash:19100:0:99999:7:::',
  ...Array.from({ length: 200 }, (_, i) => `svc${i}:*:19000:0:99999:7:::`), // a file of some size
].join('\n') + '\n';
const HASH = (tag: string) => `$6$${tag}salt$${tag.repeat(86).slice(0, 86)}`;

/** Every line of the fixture as it must be: only alice's hash and last-change day may differ. */
function checkShadow(text: string, allowedHashes: string[], label: string): string {
  assert.ok(text.endsWith('\n'), `${label}: complete file (ends with a newline)`);
  const got = text.split('\n');
  const want = SHADOW.split('\n');
  assert.is(got.length, want.length, `${label}: line count`);
  let aliceHash = '';
  for (let i = 0; i < want.length; i++) {
    if (!want[i].startsWith('alice:')) { assert.is(got[i], want[i], `${label}: line ${i + 1} untouched`); continue; }
    const f = got[i].split(':');
    assert.is(f.length, 9, `${label}: alice has 9 fields`);
    assert.is(f[0], 'alice');
    assert.ok(allowedHashes.includes(f[1]), `${label}: alice's hash is an old or new one (${f[1].slice(0, 20)})`);
    assert.ok(/^\d+$/.test(f[2]), `${label}: last-change day`);
    assert.equal(f.slice(3), want[i].split(':').slice(3), `${label}: alice's other fields`);
    aliceHash = f[1];
  }
  return aliceHash;
}

/**
 * Wait until no process has an argument naming `needle` (or a path under it): the fallback's
 * chpasswd and the thaw guardian outlive a killed agent.
 */
async function helpersDone(needle: string, what = 'chpasswd'): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const busy = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid).some((p) => {
      try { return fs.readFileSync(`/proc/${p}/cmdline`, 'latin1').split('\0').some((a) => a === needle || a.startsWith(needle + '/')); } catch { return false; }
    });
    if (!busy) return;
    await sleep(25);
  }
  throw new Error(`${what} did not finish`);
}

const pw = suite('faults-kill: SIGKILL during set-user-password');
const only = process.env.NODE_QGA_KILL_ONLY; // e.g. "freeze:fallback" to replay one part
const ROUNDS_PW = Number(process.env.NODE_QGA_KILL_ROUNDS || 40);
// Requests per round: enough that kills land between and inside rewrites, few enough that a
// round stays short (each fallback rewrite runs chpasswd).
const BATCH = { native: 24, fallback: 8 };

for (const kind of ['native', 'fallback'] as const) {
  pw(`[${kind}] ${ROUNDS_PW} kills at random points: the shadow file is always complete, old or new`, async () => {
    if (only && only !== `password:${kind}`) return;
    requireBuild();
    if (!availableBackends().includes(kind)) { console.log(`  SKIP password kills [${kind}]: backend not available`); return; }
    if (kind === 'fallback' && !fs.existsSync('/usr/sbin/chpasswd')) { console.log('  SKIP password kills [fallback]: chpasswd not installed'); return; }
    const dir = tmpDir(`kill-pw-${kind}`);
    const root = path.join(dir, 'root');
    const etc = path.join(root, 'etc');
    fs.mkdirSync(etc, { recursive: true });
    fs.writeFileSync(path.join(etc, 'passwd'), PASSWD);
    fs.writeFileSync(path.join(etc, 'group'), GROUP);
    fs.writeFileSync(path.join(etc, 'shadow'), SHADOW, { mode: 0o640 });
    const shadow = path.join(etc, 'shadow');
    const args = ['-t', dir, '--backend', kind, '--shadow-file', shadow, '--passwd-file', path.join(etc, 'passwd')];
    const hashes = ['!', HASH('a'), HASH('b'), HASH('c')];
    const batch = Array.from({ length: BATCH[kind] }, (_, i) => ({
      execute: 'guest-set-user-password', id: i,
      arguments: { username: 'alice', password: Buffer.from(HASH(i % 2 ? 'a' : 'b')).toString('base64'), crypted: true },
    }));
    const random = rng(SEED + (kind === 'native' ? 1 : 2));
    let agent = await startAgent(dir, args);
    try {
      // Calibrate: how long the whole batch takes here, so kills land anywhere inside it.
      const t0 = Date.now();
      const all = await pipeline(agent.sock, batch).replies;
      const span = Date.now() - t0;
      assert.ok(all.every((l) => JSON.parse(l).return !== undefined), `calibration batch succeeded: ${all[0]}`);
      let landedInside = 0;
      for (let round = 0; round < ROUNDS_PW; round++) {
        const label = `[${kind}] round ${round} (seed ${SEED})`;
        const delay = Math.floor(random() * span * 1.1);
        const { socket } = pipeline(agent.sock, batch);
        await sleep(delay);
        await kill(agent);
        socket.destroy();
        if (kind === 'fallback') await helpersDone(root);
        const hash = checkShadow(fs.readFileSync(shadow, 'utf8'), hashes, label);
        if (hash !== HASH('c')) landedInside++;
        // Restart: the password is set fine, nothing left behind trips it.
        agent = await startAgent(dir, args);
        const reply = await request(agent.sock, 'guest-set-user-password', { username: 'alice', password: Buffer.from(HASH('c')).toString('base64'), crypted: true });
        assert.equal(reply, { return: {} }, `${label}: set after restart`);
        assert.is(checkShadow(fs.readFileSync(shadow, 'utf8'), hashes, label), HASH('c'));
        const leftovers = fs.readdirSync(etc).filter((f) => !['passwd', 'group', 'shadow', 'shadow-', '.pwd.lock'].includes(f));
        assert.equal(leftovers, [], `${label}: no lock or temp file left`);
        assert.is(fs.statSync(shadow).mode & 0o777, 0o640, `${label}: mode kept`);
      }
      console.log(`  [${kind}] ${ROUNDS_PW} kills over a ${span} ms batch; ${landedInside} had changed the password before it died`);
    } finally {
      await kill(agent);
      if (kind === 'fallback') await helpersDone(root).catch(() => undefined);
    }
  });
}

pw.run();

// ------------------------------------------------------------------ (b) freeze-list of loops

const fr = suite('faults-kill: SIGKILL during guest-fsfreeze-freeze-list');
const ROUNDS_FREEZE = Number(process.env.NODE_QGA_KILL_FREEZE_ROUNDS || 12);
const LOOPS = ['l1', 'l2', 'l3', 'l4'];

/** A write by another process that completes within `ms` (false: it is stuck on a frozen fs). */
const writable = (dir: string, ms = 4000) => writableWithin(dir, ms, stuck);
const stuck: Array<Promise<unknown>> = [];

const skipLoops = loopUnavailable();
if (skipLoops) console.log(`SKIP faults-kill freeze part: ${skipLoops}`);

for (const kind of ['native', 'fallback'] as const) {
  fr(`[${kind}] ${ROUNDS_FREEZE} kills during freeze-list: the restarted agent knows every frozen loop`, async () => {
    if (only && only !== `freeze:${kind}`) return;
    if (skipLoops) return;
    requireBuild();
    if (!availableBackends().includes(kind)) { console.log(`  SKIP freeze kills [${kind}]: backend not available`); return; }
    let env: LoopEnv | undefined;
    let agent: AgentProc | undefined;
    try {
      env = makeLoopEnv(LOOPS.map((name) => ({ name, type: 'ext4' as const, sizeMB: 16 })));
      const statedir = path.join(env.dir, 'state');
      fs.mkdirSync(statedir);
      const mps = env.mounts.map((m) => m.mountpoint);
      const args = ['-t', statedir, '--backend', kind, '--proc-root', env.procRoot];
      const random = rng(SEED + (kind === 'native' ? 3 : 4));
      agent = await startAgent(env.dir, args);
      // Calibrate: one full freeze-list and thaw.
      const t0 = Date.now();
      assert.equal(await request(agent.sock, 'guest-fsfreeze-freeze-list', { mountpoints: mps }), { return: LOOPS.length });
      const span = Date.now() - t0;
      assert.equal(await request(agent.sock, 'guest-fsfreeze-thaw'), { return: LOOPS.length });
      const outcomes = { frozen: 0, thawed: 0, byGuardian: 0 };
      for (let round = 0; round < ROUNDS_FREEZE; round++) {
        const label = `[${kind}] round ${round} (seed ${SEED})`;
        const delay = Math.floor(random() * span * 1.2);
        const { socket } = pipeline(agent.sock, [{ execute: 'guest-fsfreeze-freeze-list', arguments: { mountpoints: mps } }]);
        await sleep(delay);
        await kill(agent);
        socket.destroy();
        agent = await startAgent(env.dir, args);
        const b = agent;
        const status = await request(agent.sock, 'guest-fsfreeze-status').catch((e: Error) => {
          throw new Error(`${label}: ${e.message}; restarted agent exit ${b.child.exitCode}/${b.child.signalCode}, stderr: ${b.stderr.join('')}`);
        }) as { return: string };
        if (status.return === 'frozen') {
          outcomes.frozen++;
          const thawed = await request(agent.sock, 'guest-fsfreeze-thaw') as { return: number };
          assert.type(thawed.return, 'number', `${label}: thaw succeeded`);
          assert.equal(await request(agent.sock, 'guest-fsfreeze-status'), { return: 'thawed' });
        } else {
          assert.is(status.return, 'thawed', label);
          outcomes.thawed++;
          if (agent.stderr.join('').includes('its thaw guardian thawed them')) outcomes.byGuardian++;
        }
        const results = await Promise.all(mps.map((mp) => writable(mp)));
        assert.equal(results, mps.map(() => true), `${label} (killed after ${delay} ms, restarted agent said ${status.return}): every loop takes a write`);
      }
      console.log(`  [${kind}] ${ROUNDS_FREEZE} kills over a ${span} ms freeze: restarted agent said frozen ${outcomes.frozen}×, thawed ${outcomes.thawed}× (${outcomes.byGuardian}× after the guardian thawed)`);
    } finally {
      if (agent) await kill(agent);
      if (env) {
        // Never leave one of our loops frozen: unfreeze (our mount points only), unmount, detach.
        for (const m of env.mounts) for (let i = 0; i < 8 && spawnSync('fsfreeze', ['--unfreeze', m.mountpoint], { stdio: 'ignore' }).status === 0; i++);
        await Promise.all(stuck.splice(0));
        // A killed agent's guardian (its marker lies under env.dir) must finish while our loops
        // are still mounted: afterwards its mount point paths would name the host's filesystem.
        await helpersDone(env.dir, 'thaw guardian').catch((e) => console.log(`  ${(e as Error).message}`));
        env.cleanup();
      }
    }
  });
}

fr.run();
