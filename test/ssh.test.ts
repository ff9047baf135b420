/**
 * guest-ssh-*-authorized-keys through a real agent whose passwd file is a fixture pointing
 * at homes under a temp dir (no real user's keys are touched): upstream qga-ssh-test's cases,
 * qemu-ga's line quirks and error texts, modes and owners, the atomic replacement, and the
 * refusals of symlink tricks, foreign owners and FIFOs.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { QgaClient, QgaError } from '../lib/client';
import { startAgent, tempDir, type TestAgent } from './helpers/agent';
import { lookupUser, lookupInFile } from '../lib/platform/passwd';
import { keysOf } from '../lib/commands/ssh';

const tmp = tempDir('qga-ssh-');
const isRoot = process.getuid!() === 0;
const me = { uid: process.getuid!(), gid: process.getgid!() };
// Another user's ids, for the chown checks (only root can give files away).
const other = isRoot ? { uid: 4321, gid: 4322 } : me;
const home = (u: string) => path.join(tmp, 'home', u);
const passwd = path.join(tmp, 'passwd');
fs.writeFileSync(passwd, [
  'root:x:0:0:root:/root:/bin/bash',
  `me:x:${me.uid}:${me.gid}:Me:${home('me')}:/bin/sh`,
  `alice:x:${other.uid}:${other.gid}:Alice:${home('alice')}:/bin/sh`,
  `ghost:x:${me.uid}:${me.gid}::${home('ghost-missing')}:/bin/sh`,
  `plain:x:${me.uid}:${me.gid}::${home('plain')}:/bin/sh`,
  '',
].join('\n'));
for (const u of ['me', 'alice', 'plain']) fs.mkdirSync(home(u), { recursive: true });

let agent: TestAgent;
let qga: QgaClient;

test.before(async () => {
  if (!isRoot) console.log('  (not root: the other user in these tests has your own uid, so owner changes are not exercised)');
  agent = await startAgent('fallback', { passwdFile: passwd });
  qga = await agent.connect();
});
test.after(async () => {
  qga.close();
  await agent.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.rmSync(agent.dir, { recursive: true, force: true });
});

const K1 = 'algo key1 comments';
const K2 = 'algo key2 comments';
const sshDir = (u: string) => path.join(home(u), '.ssh');
const keyFile = (u: string) => path.join(sshDir(u), 'authorized_keys');
const readKeys = (u: string) => fs.readFileSync(keyFile(u), 'latin1');
const reset = (u: string) => fs.rmSync(sshDir(u), { recursive: true, force: true });
const add = (username: string, keys: string[], resetFlag?: boolean) =>
  qga.call('guest-ssh-add-authorized-keys', resetFlag === undefined ? { username, keys } : { username, keys, reset: resetFlag });
const remove = (username: string, keys: string[]) => qga.call('guest-ssh-remove-authorized-keys', { username, keys });
const get = (username: string) => qga.call('guest-ssh-get-authorized-keys', { username });

async function fails(p: Promise<unknown>, desc: string | RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, QgaError);
    assert.is((e as QgaError).errorClass, 'GenericError');
    if (typeof desc === 'string') assert.is((e as QgaError).desc, desc);
    else assert.match((e as QgaError).desc, desc);
    return;
  }
  assert.unreachable(`expected error: ${desc}`);
}

// ------------------------------------------------ upstream qga-ssh-test

test('qga-ssh-test invalid_user: add and remove with an empty user name', async () => {
  await fails(add('', [K1]), "failed to lookup user '': Success");
  await fails(remove('', [K1]), "failed to lookup user '': Success");
  await fails(get('nosuchuser'), "failed to lookup user 'nosuchuser': Success");
});

test('qga-ssh-test invalid_key: a key with a newline, for add and remove; checked before the user', async () => {
  await fails(add('me', ['not a valid\nkey']), "invalid OpenSSH public key: 'not a valid\nkey'");
  await fails(remove('me', ['not a valid\nkey']), "invalid OpenSSH public key: 'not a valid\nkey'");
  await fails(add('nosuchuser', [K1, '# comment']), "invalid OpenSSH public key: '# comment'");
  // An empty key passes the check (qemu-ga 7.2 does the same).
  await fails(add('nosuchuser', ['']), "failed to lookup user 'nosuchuser': Success");
  assert.not.ok(fs.existsSync(sshDir('me')));
});

test('qga-ssh-test add_keys: no duplicates, no trailing newline', async () => {
  reset('me');
  await add('me', [K2]);
  assert.is(readKeys('me'), K2);
  await add('me', [K1, K2]);
  assert.is(readKeys('me'), `${K2}\n${K1}`);
  // Duplicates within one request are added once.
  await add('me', ['k3', 'k3']);
  assert.is(readKeys('me'), `${K2}\n${K1}\nk3`);
});

test('qga-ssh-test add_reset_keys', async () => {
  reset('me');
  await add('me', [K1, K2]);
  assert.is(readKeys('me'), `${K1}\n${K2}`);
  await add('me', [K2], true);
  assert.is(readKeys('me'), K2);
  await add('me', [], true);
  assert.is(readKeys('me'), '');
});

test('qga-ssh-test remove_keys: every copy goes, the rest keeps its order and trailing newline', async () => {
  reset('me');
  fs.mkdirSync(sshDir('me'), { mode: 0o700 });
  const start = `${K1}\n${K1}\n# a commented line\nalgo some-key another\n`;
  fs.writeFileSync(keyFile('me'), start);
  await remove('me', [K2]);
  assert.is(readKeys('me'), start);
  await remove('me', [K1, K2]);
  assert.is(readKeys('me'), '# a commented line\nalgo some-key another\n');
});

test('qga-ssh-test get_keys: keys only, in reverse file order', async () => {
  reset('me');
  fs.mkdirSync(sshDir('me'), { mode: 0o700 });
  fs.writeFileSync(keyFile('me'), `${K1}\n# a commented line\nalgo some-key another\n`);
  assert.equal(await get('me'), { keys: ['algo some-key another', K1] });
});

// ------------------------------------------------ qemu-ga's line handling

test('get: lines are trimmed (ASCII space only); blank and # lines dropped', async () => {
  reset('me');
  fs.mkdirSync(sshDir('me'), { mode: 0o700 });
  fs.writeFileSync(keyFile('me'), Buffer.from('  k1 a \r\n\n\t#d\nk2 b\t\n\u00e9 key\n', 'utf8'));
  assert.equal(await get('me'), { keys: ['\u00e9 key', 'k2 b', 'k1 a'] });
  assert.equal(keysOf(Buffer.from('\xa0k\xa0\n', 'latin1')).map((k) => Buffer.from(k).length), [Buffer.from('\ufffdk\ufffd').length]);
  fs.writeFileSync(keyFile('me'), '');
  assert.equal(await get('me'), { keys: [] });
});

test('add keeps a trailing empty line of the old file (qemu-ga quirk), and an empty key matches it', async () => {
  reset('me');
  fs.mkdirSync(sshDir('me'), { mode: 0o700 });
  fs.writeFileSync(keyFile('me'), 'k1 a\nk2\n');
  await add('me', ['k3 c', '']);
  assert.is(readKeys('me'), 'k1 a\nk2\n\nk3 c');
  await remove('me', ['']);
  assert.is(readKeys('me'), 'k1 a\nk2\nk3 c');
  await add('me', ['caf\u00e9 key']);
  assert.is(fs.readFileSync(keyFile('me'), 'utf8'), 'k1 a\nk2\nk3 c\ncaf\u00e9 key');
  await remove('me', ['caf\u00e9 key']);
  assert.is(readKeys('me'), 'k1 a\nk2\nk3 c');
});

test('get on a missing file, remove on a missing file', async () => {
  reset('me');
  const f = keyFile('me');
  await fails(get('me'), `failed to read '${f}': Failed to open file \u201C${f}\u201D: No such file or directory`);
  assert.equal(await remove('me', [K1]), {});
  assert.not.ok(fs.existsSync(sshDir('me')), 'remove creates nothing');
});

// ------------------------------------------------ modes, owners, atomic replacement

test('add creates .ssh 0700 and the file 0600, both owned by the user', async () => {
  reset('alice');
  await add('alice', [K1]);
  const d = fs.statSync(sshDir('alice'));
  const f = fs.statSync(keyFile('alice'));
  assert.is(d.mode & 0o7777, 0o700);
  assert.is(f.mode & 0o7777, 0o600);
  assert.equal([d.uid, d.gid], [other.uid, other.gid]);
  assert.equal([f.uid, f.gid], [other.uid, other.gid]);
  // An existing file with loose modes or the wrong owner is put right.
  fs.chmodSync(keyFile('alice'), 0o644);
  if (isRoot) fs.chownSync(keyFile('alice'), 0, 0);
  await add('alice', [K2]);
  const g = fs.statSync(keyFile('alice'));
  assert.is(g.mode & 0o7777, 0o600);
  assert.equal([g.uid, g.gid], [other.uid, other.gid]);
  assert.is(readKeys('alice'), `${K1}\n${K2}`);
});

test('the file is replaced, never rewritten in place: a hard link elsewhere keeps its bytes', async () => {
  reset('me');
  await add('me', [K1]);
  const outside = path.join(tmp, 'outside-file');
  fs.writeFileSync(outside, 'precious\n');
  fs.rmSync(keyFile('me'));
  fs.linkSync(outside, keyFile('me'));
  await add('me', [K2]);
  assert.is(fs.readFileSync(outside, 'utf8'), 'precious\n');
  assert.is(readKeys('me'), `precious\n\n${K2}`);
  assert.is(fs.statSync(keyFile('me')).nlink, 1);
  // No temp files left behind.
  assert.equal(fs.readdirSync(sshDir('me')), ['authorized_keys']);
});

test('an existing root-owned .ssh is accepted and left as it is', async () => {
  if (!isRoot) { console.log('  SKIP: root-owned .ssh case needs root'); return; }
  reset('alice');
  fs.mkdirSync(sshDir('alice'), { mode: 0o755 });
  await add('alice', [K1]);
  const d = fs.statSync(sshDir('alice'));
  assert.equal([d.uid, d.mode & 0o7777], [0, 0o755]);
  assert.is(fs.statSync(keyFile('alice')).uid, other.uid);
});

// ------------------------------------------------ refusals

test('a .ssh that is a symlink is refused by get, add and remove; its target is untouched', async () => {
  reset('me');
  const target = path.join(tmp, 'elsewhere');
  fs.mkdirSync(target, { recursive: true });
  fs.writeFileSync(path.join(target, 'authorized_keys'), 'secret line\n');
  fs.symlinkSync(target, sshDir('me'));
  const why = `refusing to use '${sshDir('me')}': it is a symbolic link`;
  await fails(get('me'), why);
  await fails(add('me', [K1]), why);
  await fails(add('me', [K1], true), why);
  await fails(remove('me', ['secret line']), why);
  assert.is(fs.readFileSync(path.join(target, 'authorized_keys'), 'utf8'), 'secret line\n');
  assert.equal(fs.readdirSync(target), ['authorized_keys']);
  // A dangling link too.
  fs.rmSync(sshDir('me'));
  fs.symlinkSync(path.join(tmp, 'does-not-exist'), sshDir('me'));
  await fails(add('me', [K1], true), why);
  assert.not.ok(fs.existsSync(path.join(tmp, 'does-not-exist')));
  fs.rmSync(sshDir('me'));
});

test('an authorized_keys that is a symlink is refused; its target is untouched', async () => {
  reset('me');
  fs.mkdirSync(sshDir('me'), { mode: 0o700 });
  const target = path.join(tmp, 'shadow-like');
  fs.writeFileSync(target, 'root:secret\n');
  fs.symlinkSync(target, keyFile('me'));
  const why = `refusing to use '${keyFile('me')}': it is a symbolic link`;
  await fails(get('me'), why);
  await fails(add('me', [K1]), why);
  await fails(add('me', [K1], true), why);
  await fails(remove('me', ['root:secret']), why);
  assert.is(fs.readFileSync(target, 'utf8'), 'root:secret\n');
  assert.ok(fs.lstatSync(keyFile('me')).isSymbolicLink());
  assert.equal(fs.readdirSync(sshDir('me')), ['authorized_keys']);
});

test('a .ssh owned by someone else is refused', async () => {
  if (!isRoot) { console.log('  SKIP: foreign-owner case needs root (chown)'); return; }
  reset('me');
  fs.mkdirSync(sshDir('me'), { mode: 0o700 });
  fs.writeFileSync(keyFile('me'), 'k\n');
  fs.chownSync(sshDir('me'), 4999, 4999);
  const why = `refusing to use '${sshDir('me')}': it is owned by uid 4999, not by 'me' or root`;
  await fails(get('me'), why);
  await fails(add('me', [K1]), why);
  await fails(remove('me', ['k']), why);
  assert.is(readKeys('me'), 'k\n');
});

test('a FIFO as authorized_keys is refused without hanging the agent', async () => {
  if (spawnSync('mkfifo', ['--help']).error) { console.log('  SKIP: mkfifo not available'); return; }
  reset('me');
  fs.mkdirSync(sshDir('me'), { mode: 0o700 });
  assert.is(spawnSync('mkfifo', [keyFile('me')]).status, 0);
  const why = `refusing to use '${keyFile('me')}': it is not a regular file`;
  await fails(get('me'), why);
  await fails(remove('me', [K1]), why);
  await fails(add('me', [K1]), why);
});

// ------------------------------------------------ qemu-ga's error texts

test('error texts: missing home, .ssh a file, authorized_keys a directory', async () => {
  const g = home('ghost-missing');
  await fails(add('ghost', [K1]), `failed to create directory '${g}/.ssh': No such file or directory`);
  await fails(get('ghost'), `failed to read '${g}/.ssh/authorized_keys': Failed to open file \u201C${g}/.ssh/authorized_keys\u201D: No such file or directory`);
  assert.equal(await remove('ghost', [K1]), {});

  const p = home('plain');
  fs.rmSync(path.join(p, '.ssh'), { recursive: true, force: true });
  fs.writeFileSync(path.join(p, '.ssh'), 'not a dir');
  await fails(get('plain'), `failed to read '${p}/.ssh/authorized_keys': Failed to open file \u201C${p}/.ssh/authorized_keys\u201D: Not a directory`);
  await fails(add('plain', [K1]), `failed to create directory '${p}/.ssh': File exists`);
  assert.equal(await remove('plain', [K1]), {});
  fs.rmSync(path.join(p, '.ssh'));

  fs.mkdirSync(path.join(p, '.ssh', 'authorized_keys'), { recursive: true });
  const f = `${p}/.ssh/authorized_keys`;
  await fails(get('plain'), `failed to read '${f}': Error reading file \u201C${f}\u201D: Is a directory`);
  await fails(remove('plain', [K1]), `failed to read '${f}': Error reading file \u201C${f}\u201D: Is a directory`);
  const esc = f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  await fails(add('plain', [K1]), new RegExp(`^failed to write to '${esc}': Failed to rename file \u201C${esc}\\.[A-Za-z0-9]{6}\u201D to \u201C${esc}\u201D: g_rename\\(\\) failed: Is a directory$`));
  assert.equal(fs.readdirSync(path.join(p, '.ssh')), ['authorized_keys'], 'the temp file is removed');
  fs.rmSync(path.join(p, '.ssh'), { recursive: true });
});

test('argument validation and guest-info order on the wire', async () => {
  const ask = async (req: unknown) => { qga.socket.write(JSON.stringify(req) + '\n'); return (await qga.readLine()).toString(); };
  assert.is(await ask({ execute: 'guest-ssh-add-authorized-keys', arguments: { username: 'me' } }),
    '{"error": {"class": "GenericError", "desc": "Parameter \'keys\' is missing"}}');
  assert.is(await ask({ execute: 'guest-ssh-add-authorized-keys', arguments: { username: 'me', keys: 'k' } }),
    '{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'keys\', expected: array"}}');
  assert.is(await ask({ execute: 'guest-ssh-add-authorized-keys', arguments: { username: 'me', keys: [1] } }),
    '{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'keys[0]\', expected: string"}}');
  assert.is(await ask({ execute: 'guest-ssh-add-authorized-keys', arguments: { username: 'me', keys: [], reset: 'yes' } }),
    '{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'reset\', expected: boolean"}}');
  assert.is(await ask({ execute: 'guest-ssh-remove-authorized-keys', arguments: { username: 'me', keys: [], reset: true } }),
    '{"error": {"class": "GenericError", "desc": "Parameter \'reset\' is unexpected"}}');
  assert.is(await ask({ execute: 'guest-ssh-get-authorized-keys' }),
    '{"error": {"class": "GenericError", "desc": "Parameter \'username\' is missing"}}');
  reset('me');
  fs.mkdirSync(sshDir('me'), { mode: 0o700 });
  fs.writeFileSync(keyFile('me'), 'a\nb');
  assert.is(await ask({ execute: 'guest-ssh-get-authorized-keys', arguments: { username: 'me' } }), '{"return": {"keys": ["b", "a"]}}');
  assert.is(await ask({ execute: 'guest-ssh-remove-authorized-keys', arguments: { username: 'me', keys: ['a'] } }), '{"return": {}}');

  const names: string[] = (await qga.call('guest-info')).supported_commands.map((c: { name: string }) => c.name);
  const at = (n: string) => names.indexOf(n);
  // Reverse registration order: ... diskstats, ssh-remove, ssh-add, ssh-get, get-devices ...
  assert.is(at('guest-ssh-add-authorized-keys'), at('guest-ssh-remove-authorized-keys') + 1);
  assert.is(at('guest-ssh-get-authorized-keys'), at('guest-ssh-add-authorized-keys') + 1);
  assert.is(at('guest-get-devices'), at('guest-ssh-get-authorized-keys') + 1);
});

// ------------------------------------------------ user lookup

test('user lookup: fixture file by exact name; the system database through getent', async () => {
  assert.equal(lookupInFile(passwd, 'me'), { name: 'me', uid: me.uid, gid: me.gid, home: home('me') });
  assert.is(lookupInFile(passwd, ''), undefined);
  assert.is(lookupInFile(passwd, 'm'), undefined);
  assert.is(lookupInFile(passwd, String(me.uid)), undefined);
  const root = await lookupUser('root');
  assert.is(root?.uid, 0);
  // getent would answer a numeric name by uid; getpwnam does not.
  assert.is(await lookupUser('0'), undefined);
  assert.is(await lookupUser(''), undefined);
  assert.is(await lookupUser('no-such-user-qga-test'), undefined);
});

test.run();
