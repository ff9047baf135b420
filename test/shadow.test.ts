/** lib/platform/shadow.ts on fixture copies: the one line changes, everything else is byte-identical. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setShadowPassword, replaceShadowEntry, lockShadowFile } from '../lib/platform/shadow';
import { tempDir } from './helpers/native';

const FIXTURE = [
  'root:$y$j9T$abc$def:19000:0:99999:7:::',
  'daemon:*:19000:0:99999:7:::',
  'alice:!:19100:0:99999:7:::',
  'bob:$6$salt$hash:19200:0:99999:7::20000:',
  'short:x',
  '+@netgroup::::::::',
  'm\u00fcller:!:19300::::::',
  '',
].join('\n');

let dir = '';
let shadow = '';
test.before.each(() => {
  dir = tempDir('shadow');
  shadow = path.join(dir, 'shadow');
  fs.writeFileSync(shadow, FIXTURE);
  fs.chmodSync(shadow, 0o640);
  fs.chownSync(shadow, 0, 42);
});
test.after.each(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const NOW = Date.UTC(2026, 10, 25, 12); // 2026-11-25 = day 20417
const DAY = Math.floor(NOW / 86_400_000);

test('updates fields 2 and 3 of the user only; mode, owner and other bytes kept', async () => {
  await setShadowPassword(shadow, 'bob', '$y$j9T$new$hash', { now: NOW });
  const lines = fs.readFileSync(shadow, 'utf8').split('\n');
  const want = FIXTURE.split('\n');
  want[3] = `bob:$y$j9T$new$hash:${DAY}:0:99999:7::20000:`;
  assert.equal(lines, want);
  const st = fs.statSync(shadow);
  assert.is(st.mode & 0o7777, 0o640);
  if (process.getuid?.() === 0) assert.equal([st.uid, st.gid], [0, 42]);
  assert.equal(fs.readdirSync(dir), ['shadow'], 'no lock or temp file left');
});

test('a short line gets its missing fields; non-ASCII user names match', async () => {
  await setShadowPassword(shadow, 'short', 'HASH', { now: NOW });
  await setShadowPassword(shadow, 'm\u00fcller', 'H2', { now: NOW });
  const lines = fs.readFileSync(shadow, 'utf8').split('\n');
  assert.is(lines[4], `short:HASH:${DAY}`);
  assert.is(lines[6], `m\u00fcller:H2:${DAY}::::::`);
});

test('an unknown user is a clear error and the file is untouched', async () => {
  for (const user of ['nobody-here', 'ali', '', '+@netgroup:']) {
    let msg = '';
    await setShadowPassword(shadow, user, 'HASH').catch((e: Error) => { msg = e.message; });
    assert.is(msg, user.includes(':') ? 'forbidden characters in username' : `user '${user}' does not exist`);
  }
  assert.is(fs.readFileSync(shadow, 'utf8'), FIXTURE);
  assert.equal(fs.readdirSync(dir), ['shadow']);
});

test('a hash with : or newline is refused', async () => {
  let msg = '';
  await setShadowPassword(shadow, 'bob', 'a:b').catch((e: Error) => { msg = e.message; });
  assert.match(msg, /forbidden characters/);
  assert.is(fs.readFileSync(shadow, 'utf8'), FIXTURE);
});

test('a lock held by a live process makes it wait, then fail; a dead holder is broken', async () => {
  fs.writeFileSync(`${shadow}.lock`, String(process.ppid));
  let msg = '';
  await setShadowPassword(shadow, 'bob', 'HASH', { lockTimeoutMs: 120 }).catch((e: Error) => { msg = e.message; });
  assert.match(msg, /cannot lock .*shadow: it is being edited by process/);
  assert.is(fs.readFileSync(shadow, 'utf8'), FIXTURE);

  fs.writeFileSync(`${shadow}.lock`, '2147483646'); // no such pid
  await setShadowPassword(shadow, 'bob', 'HASH', { lockTimeoutMs: 120, now: NOW });
  assert.match(fs.readFileSync(shadow, 'utf8'), /^bob:HASH:/m);
  assert.equal(fs.readdirSync(dir), ['shadow']);
});

test('a pid-less lock (left by a kill mid-creation) is broken once stale; dead holders\' temp names are removed', async () => {
  fs.writeFileSync(`${shadow}.lock`, '');
  let msg = '';
  await setShadowPassword(shadow, 'bob', 'HASH', { lockTimeoutMs: 120 }).catch((e: Error) => { msg = e.message; });
  assert.match(msg, /being edited by process \?/, 'a fresh empty lock may be someone creating it: waited for');
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(`${shadow}.lock`, old, old);
  fs.writeFileSync(`${shadow}.lock.2147483646`, '2147483646'); // a dead taker's temp name
  await setShadowPassword(shadow, 'bob', 'HASH', { lockTimeoutMs: 120, now: NOW });
  assert.match(fs.readFileSync(shadow, 'utf8'), /^bob:HASH:/m);
  assert.equal(fs.readdirSync(dir), ['shadow']);
});

test('lockShadowFile excludes a second taker until released', async () => {
  const release = await lockShadowFile(shadow);
  let second = '';
  await lockShadowFile(shadow, 60).catch((e: Error) => { second = e.message; });
  assert.match(second, /cannot lock/);
  release();
  (await lockShadowFile(shadow, 60))();
});

test('replaceShadowEntry keeps arbitrary bytes and CRLF-free layout', () => {
  const raw = Buffer.concat([Buffer.from('x:old:1:2\n'), Buffer.from([0xff, 0xfe, 0x3a, 0x0a]), Buffer.from('y:old:1')]);
  const out = replaceShadowEntry(raw, 'y', 'new', 5);
  assert.ok(out.equals(Buffer.concat([Buffer.from('x:old:1:2\n'), Buffer.from([0xff, 0xfe, 0x3a, 0x0a]), Buffer.from('y:new:5')])));
});

test.run();
