/**
 * Differential test: guest-ssh-*-authorized-keys on Debian's qemu-ga 7.2 and on node-qga,
 * step by step on twin fixture homes. qemu-ga looks users up with getpwnam, so it runs in a
 * private mount namespace (unshare -m) with a fixture bind-mounted over /etc/passwd: its
 * test users live under a temp dir and no real user's keys are touched; the host's
 * /etc/passwd is untouched. node-qga gets the same users through its passwdFile option.
 * After each step the replies (home paths and glib's random temp-file suffix normalised)
 * and the resulting trees (names, types, modes, owners, bytes) must be identical.
 * Not compared: symlink tricks and foreign-owned .ssh, which qemu-ga follows and node-qga
 * refuses on purpose (ssh.test.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startAgent, tempDir, type TestAgent } from './helpers/agent';
import { canUnshare, LineConn, startQemuGa, type QemuGa } from './exec-qemu-ga';

const dir = tempDir('qga-ssh-diff-');
const isRoot = process.getuid!() === 0;
const usable = canUnshare && isRoot;
const roots = { theirs: path.join(dir, 'q'), ours: path.join(dir, 'n') };
let theirs: QemuGa | undefined;
let agent: TestAgent | undefined;
let ours: LineConn | undefined;

function passwdFor(root: string, base: string): string {
  const users = [
    `qgauser:x:4321:4322::${root}/home/qgauser:/bin/sh`,
    `qgaghost:x:4323:4322::${root}/missing/home:/bin/sh`,
  ].join('\n') + '\n';
  const file = path.join(dir, `passwd-${path.basename(root)}`);
  fs.writeFileSync(file, base + (base.endsWith('\n') ? '' : '\n') + users);
  return file;
}

test.before(async () => {
  if (!usable) return;
  for (const r of Object.values(roots)) fs.mkdirSync(path.join(r, 'home', 'qgauser'), { recursive: true });
  const system = fs.readFileSync('/etc/passwd', 'utf8');
  theirs = await startQemuGa(path.join(dir, 'qemu-ga'), { passwd: passwdFor(roots.theirs, system) });
  agent = await startAgent('fallback', { passwdFile: passwdFor(roots.ours, '') });
  ours = await LineConn.open(agent.sock);
});
test.after(async () => {
  ours?.close();
  await agent?.stop();
  await theirs?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  if (agent) fs.rmSync(agent.dir, { recursive: true, force: true });
});

/** Every entry under root: type, mode, owner and bytes. */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (p: string, rel: string): void => {
    const st = fs.lstatSync(p);
    const kind = st.isDirectory() ? 'd' : st.isFile() ? 'f' : st.isSymbolicLink() ? 'l' : '?';
    const body = st.isFile() ? JSON.stringify(fs.readFileSync(p, 'latin1')) : '';
    out.push(`${rel} ${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${body}`);
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(path.join(p, n), `${rel}/${n}`);
  };
  walk(root, '.');
  return out;
}

const normalise = (line: string, root: string): string =>
  line.split(root).join('<ROOT>').replace(/authorized_keys\.[A-Za-z0-9]{6}/g, 'authorized_keys.XXXXXX');

/** The same filesystem change on both twins. */
function onBoth(fn: (root: string) => void): void {
  fn(roots.theirs);
  fn(roots.ours);
}

async function step(execute: string, args: Record<string, unknown>): Promise<string> {
  const req = { execute, arguments: args };
  const a = normalise(await theirs!.conn.ask(req), roots.theirs);
  const b = normalise(await ours!.ask(req), roots.ours);
  assert.is(b, a, `${execute} ${JSON.stringify(args)}`);
  assert.equal(snapshot(roots.ours), snapshot(roots.theirs), `tree after ${execute} ${JSON.stringify(args)}`);
  return b;
}

const K1 = 'algo key1 comments';
const K2 = 'algo key2 comments';
const u = 'qgauser';
const get = () => step('guest-ssh-get-authorized-keys', { username: u });
const add = (keys: string[], reset?: boolean) => step('guest-ssh-add-authorized-keys', reset === undefined ? { username: u, keys } : { username: u, keys, reset });
const remove = (keys: string[]) => step('guest-ssh-remove-authorized-keys', { username: u, keys });
const sshDir = (root: string) => path.join(root, 'home', u, '.ssh');
const keyFile = (root: string) => path.join(sshDir(root), 'authorized_keys');
const clean = () => onBoth((r) => fs.rmSync(sshDir(r), { recursive: true, force: true }));

const skip = (): boolean => {
  if (!usable) { console.log('  SKIP: needs root, /usr/sbin/qemu-ga and unshare -m (qemu-ga must see a fixture /etc/passwd)'); return true; }
  return false;
};

test('missing file: get errors, remove is a no-op; add creates .ssh and the file', async () => {
  if (skip()) return;
  clean();
  await get();
  await remove([K1]);
  await add([K2]);
  await add([K1, K2, K1]);
  assert.is(await get(), '{"return": {"keys": ["algo key1 comments", "algo key2 comments"]}}');
});

test('reset, and reset with no keys', async () => {
  if (skip()) return;
  await add([K1, K2], true);
  await add([K2], true);
  await add([], true);
  await get();
  clean();
  await add([], true);
});

test('line quirks: trimming, comments, trailing empty line, empty key, non-ASCII', async () => {
  if (skip()) return;
  clean();
  onBoth((r) => { fs.mkdirSync(sshDir(r), { mode: 0o700 }); fs.writeFileSync(keyFile(r), 'k1 a\n  k2 b \r\n\n# c\n\t#d\nk1 a\n'); });
  await get();
  await add(['k3 c', '']);
  await remove(['']);
  await remove(['k1 a', 'nothing']);
  await add(['caf\u00e9 \u00fcber']);
  await get();
  await remove(['caf\u00e9 \u00fcber']);
  onBoth((r) => fs.writeFileSync(keyFile(r), ''));
  await get();
  await remove([K1]);
  await add([K1]);
});

test('modes and owners are put right on an existing file; a root-owned 0755 .ssh is kept', async () => {
  if (skip()) return;
  onBoth((r) => { fs.chmodSync(keyFile(r), 0o644); fs.chownSync(keyFile(r), 0, 0); });
  await add([K2]);
  clean();
  onBoth((r) => fs.mkdirSync(sshDir(r), { mode: 0o755 }));
  await add([K1]);
  await remove([K1]);
});

test('invalid keys and unknown users', async () => {
  if (skip()) return;
  await step('guest-ssh-add-authorized-keys', { username: 'no-such-user-qga', keys: [K1, '#c'] });
  await step('guest-ssh-remove-authorized-keys', { username: 'no-such-user-qga', keys: ['a\nb'] });
  await step('guest-ssh-add-authorized-keys', { username: 'no-such-user-qga', keys: [''] });
  await step('guest-ssh-remove-authorized-keys', { username: '', keys: [K1] });
  await step('guest-ssh-get-authorized-keys', { username: '' });
  await step('guest-ssh-add-authorized-keys', { username: u, keys: ['ok', 'not a valid\nkey'] });
});

test('error texts: home missing, .ssh a file, authorized_keys a directory', async () => {
  if (skip()) return;
  await step('guest-ssh-add-authorized-keys', { username: 'qgaghost', keys: [K1] });
  await step('guest-ssh-get-authorized-keys', { username: 'qgaghost' });
  await step('guest-ssh-remove-authorized-keys', { username: 'qgaghost', keys: [K1] });
  clean();
  onBoth((r) => fs.writeFileSync(sshDir(r), 'a file'));
  await get();
  await add([K1]);
  await remove([K1]);
  onBoth((r) => { fs.rmSync(sshDir(r)); fs.mkdirSync(keyFile(r), { recursive: true }); });
  await get();
  await remove([K1]);
  await add([K1]);
  clean();
});

test.run();
