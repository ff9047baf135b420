/**
 * FIFREEZE / FITHAW / FITRIM through the addon, on an ext4 image loop-mounted under a temp
 * directory (never on a filesystem of this machine). Needs root, mount, losetup, mkfs.ext4;
 * skips visibly otherwise.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nativeAddonOrSkip, tempDir } from './helpers/native';

const addon = nativeAddonOrSkip('test/native-fs.test.ts');

function missingPrerequisite(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for loop mounts';
  for (const tool of ['mount', 'umount', 'mkfs.ext4']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore', env: { PATH: `${process.env.PATH}:/sbin:/usr/sbin` } });
    } catch {
      return `${tool} not found`;
    }
  }
  return undefined;
}

const why = addon ? missingPrerequisite() : 'no addon';
if (addon && why) console.log(`SKIP test/native-fs.test.ts: ${why}`);

if (addon && !why) {
  const a = addon;
  const env = { ...process.env, PATH: `${process.env.PATH}:/sbin:/usr/sbin` };
  let dir = '';
  let mnt = '';
  let mounted = false;

  test.before(() => {
    dir = tempDir('fs');
    const img = path.join(dir, 'ext4.img');
    mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    execFileSync('truncate', ['-s', '64M', img], { env });
    execFileSync('mkfs.ext4', ['-q', '-F', img], { env });
    execFileSync('mount', ['-o', 'loop', img, mnt], { env });
    mounted = true;
    fs.writeFileSync(path.join(mnt, 'data'), Buffer.alloc(4 << 20, 7));
    fs.unlinkSync(path.join(mnt, 'data')); // leaves free blocks for FITRIM to discard
  });

  test.after(async () => {
    if (mounted) {
      await a.thaw(mnt).catch(() => false); // never leave it frozen, whatever failed
      execFileSync('umount', [mnt], { env }); // the loop device is auto-cleared
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('freeze, freeze again (EBUSY), thaw, thaw again (nothing to thaw)', async () => {
    await a.freeze(mnt);
    try {
      let err: { code?: string; syscall?: string; path?: string } | undefined;
      await a.freeze(mnt).catch((e) => { err = e; });
      assert.ok(err, 'second freeze should fail');
      assert.equal([err!.code, err!.syscall, err!.path], ['EBUSY', 'ioctl(FIFREEZE)', mnt]);
    } finally {
      assert.is(await a.thaw(mnt), true);
    }
    assert.is(await a.thaw(mnt), false);
    fs.writeFileSync(path.join(mnt, 'after-thaw'), 'writable again');
  });

  test('trim discards free space and reports bigint results', async () => {
    const r = await a.trim(mnt, 0n);
    assert.type(r.trimmed, 'bigint');
    assert.type(r.minimum, 'bigint');
    assert.ok(r.trimmed > 0n, `trimmed ${r.trimmed}`);
    const big = await a.trim(mnt, 1n << 20n);
    assert.ok(big.minimum >= 1n << 20n, `minimum ${big.minimum}`);
  });
}

test.run();
