/**
 * The state directory's ownership and mode (docs/SECURITY.md): a directory another user can
 * write without the sticky bit, or owned by another user, is refused at start-up (they could
 * plant qga.state.isfrozen and start the agent frozen); a sticky shared one is accepted with a
 * warning, and state files there that are not ours (or root's) are ignored. qemu-ga checks none
 * of this. Ownership cases need root (chown); they are skipped visibly otherwise.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StateStore } from '../lib/state';
import { startAgent } from './helpers/agent';
import { CLI, requireBuild } from './helpers/transport-host';
import { tmpDir } from './fixtures/system-env';

const isRoot = process.getuid?.() === 0;
const OTHER = 4242; // some unprivileged uid/gid

function stateDir(mode: number, owner?: { uid: number; gid: number }): string {
  const dir = path.join(tmpDir('statedir'), 'state');
  fs.mkdirSync(dir);
  if (owner) fs.chownSync(dir, owner.uid, owner.gid);
  fs.chmodSync(dir, mode);
  return dir;
}

function openError(dir: string): string {
  try { StateStore.open(dir); } catch (e) { return (e as Error).message; }
  return '';
}

test('writable by others without the sticky bit: refused, at start-up, with the reason', () => {
  const dir = stateDir(0o777);
  assert.is(openError(dir), `state directory ${dir} is writable by other users (mode 0777): refusing to use it (they could plant the frozen marker); use a root-owned directory that only root can write, such as /run`);
  assert.equal(fs.readdirSync(dir), [], 'nothing created there');
  requireBuild();
  const r = spawnSync(process.execPath, [CLI, '-m', 'unix-listen', '-p', path.join(path.dirname(dir), 'sock'), '-t', dir], { encoding: 'utf8', timeout: 10_000 });
  assert.is(r.status, 1);
  assert.match(r.stderr, `failed to load persistent state: state directory ${dir} is writable by other users (mode 0777)`);
});

test('group-writable: refused for a non-root group, accepted for root\'s group', () => {
  if (!isRoot) { console.log('  SKIP group-writable state dir: needs root (chown)'); return; }
  const dir = stateDir(0o770, { uid: 0, gid: OTHER });
  assert.match(openError(dir), `state directory ${dir} is writable by other users (mode 0770)`);
  const rootGroup = stateDir(0o770, { uid: 0, gid: 0 });
  assert.is(openError(rootGroup), '');
  assert.equal(StateStore.open(rootGroup).warnings, []);
});

test('owned by another user: refused even with mode 0700', () => {
  if (!isRoot) { console.log('  SKIP state dir owned by another user: needs root (chown)'); return; }
  const dir = stateDir(0o700, { uid: OTHER, gid: OTHER });
  assert.is(openError(dir), `state directory ${dir} is owned by uid ${OTHER}: refusing to use it (that user could plant the frozen marker); use a directory owned by root`);
});

test('a private root-owned directory: no warning; qga.state created at start-up as qemu-ga does', () => {
  const dir = stateDir(0o755);
  const store = StateStore.open(dir);
  assert.equal(store.warnings, []);
  assert.is(fs.readFileSync(path.join(dir, 'qga.state'), 'utf8'), '[global]\nfd_counter=1000\n');
  assert.is(fs.statSync(path.join(dir, 'qga.state')).mode & 0o777, 0o600);
});

test('sticky shared directory (/tmp-like): accepted with a warning; files planted by another user are ignored', async () => {
  if (!isRoot) { console.log('  SKIP sticky state dir with planted files: needs root (chown)'); return; }
  const dir = stateDir(0o1777);
  const marker = path.join(dir, 'qga.state.isfrozen');
  const state = path.join(dir, 'qga.state');
  fs.writeFileSync(marker, JSON.stringify({ mountpoints: ['/'], since: 1 }));
  fs.writeFileSync(state, '[global]\nfd_counter=7\n');
  fs.chownSync(marker, OTHER, OTHER);
  fs.chownSync(state, OTHER, OTHER);
  const a = await startAgent('fallback', {}, dir);
  const c = await a.connect();
  try {
    assert.is(await c.call('guest-fsfreeze-status'), 'thawed', 'the planted marker does not freeze the agent');
    assert.is(await c.call('guest-file-open', { path: path.join(dir, 'x'), mode: 'w' }), 1000, 'the planted counter is not used');
    const st = fs.statSync(state);
    assert.equal([st.uid, st.mode & 0o777], [0, 0o600], 'qga.state replaced by our own');
  } finally {
    c.close();
    await a.stop();
  }
  const log = fs.readFileSync(path.join(dir, 'agent.log'), 'utf8');
  assert.match(log, `state directory ${dir} is shared with other users (mode 1777, sticky)`);
  assert.match(log, `ignoring ${marker}: owned by uid ${OTHER}; another user may have planted it`);
  assert.match(log, `ignoring ${state}: owned by uid ${OTHER}`);
});

test('a marker that is a symlink is ignored, not followed', () => {
  const dir = stateDir(0o700);
  const target = path.join(path.dirname(dir), 'elsewhere');
  fs.writeFileSync(target, '{"mountpoints":["/"],"since":1}');
  fs.symlinkSync(target, path.join(dir, 'qga.state.isfrozen'));
  const store = StateStore.open(dir);
  assert.not.ok(store.frozen);
  assert.equal(store.warnings, [`ignoring ${path.join(dir, 'qga.state.isfrozen')}: not a regular file; another user may have planted it`]);
});

test.run();
