/** lib/backend/load-addon.ts: failures are data (error + tried paths), never exceptions. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadAddon, packageRoot } from '../lib/backend/load-addon';
import { tempDir } from './helpers/native';

test('packageRoot finds the directory holding package.json', () => {
  assert.ok(fs.existsSync(path.join(packageRoot(), 'package.json')));
  assert.is(packageRoot(), path.resolve(__dirname, '..'));
});

test('a missing addon is reported with every path tried', () => {
  const dir = tempDir('loader');
  try {
    const paths = [path.join(dir, 'a.node'), path.join(dir, 'b.node')];
    const r = loadAddon({ paths });
    assert.ok('error' in r);
    if ('error' in r) {
      assert.equal(r.tried, paths);
      assert.match(r.error.message, /not found/);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupt .node (ERR_DLOPEN_FAILED) is caught and reported', () => {
  const dir = tempDir('loader');
  try {
    const bad = path.join(dir, 'qga_native.node');
    fs.writeFileSync(bad, 'this is not an ELF shared object');
    const r = loadAddon({ paths: [bad] });
    assert.ok('error' in r);
    if ('error' in r) {
      assert.is((r.error as NodeJS.ErrnoException).code, 'ERR_DLOPEN_FAILED');
      assert.equal(r.tried, [bad]);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the default load either yields the addon or explains why not', () => {
  const r = loadAddon();
  if ('addon' in r) {
    assert.is(r.addon.abiVersion, 1);
    assert.is(loadAddon(), r, 'cached');
  } else {
    console.log(`note: addon not built here (${r.error.message})`);
    assert.ok(r.tried.length > 0);
  }
});

test.run();
