// The CI-sized soak (issue 7): scripts/soak.js sends 20000 mixed requests (ping, sync,
// sync-delimited, info, file writes and reads of random sizes checked by SHA-256, malformed
// requests) over one long connection and many short ones, to the built agent, on each backend
// this machine has. It fails on any wrong reply or a descriptor leak; the RSS curve is printed.
// The million-request run is documented in fuzz/README.md (`--requests 1000000`).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadAddon } from '../lib/backend/load-addon';

const root = path.join(__dirname, '..');
const backends = ['fallback', ...('error' in loadAddon() ? [] : ['native'])];
if (backends.length === 1) console.log('  soak-short: no addon built, the native backend is skipped');

for (const backend of backends) {
  test(`20000 mixed requests on the ${backend} backend: every reply right, no descriptor leak`, () => {
    if (!fs.existsSync(path.join(root, 'dist', 'cli.js'))) throw new Error('dist/cli.js missing: npm run build');
    const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'soak.js'), '--requests', '20000', '--seed', '7', '--backend', backend],
      { encoding: 'utf8', timeout: 300_000 });
    const out = `${r.stdout}${r.stderr}`;
    console.log(out.split('\n').filter((l) => /RSS after|wrong replies|req\/s|soak:/.test(l)).map((l) => `  [${backend}] ${l}`).join('\n'));
    assert.match(out, /wrong replies: 0\n/);
    assert.not.match(out, /DESCRIPTOR LEAK/);
    assert.is(r.status, 0, out.slice(-2000));
  });
}

test.run();
