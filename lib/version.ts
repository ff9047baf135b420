import * as fs from 'node:fs';
import * as path from 'node:path';

/** The package version, read once from package.json next to lib/ or dist/. */
export const PACKAGE_VERSION: string = (() => {
  try { return JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version as string; }
  catch { return '0.0.0'; }
})();
