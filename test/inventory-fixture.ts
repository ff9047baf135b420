/**
 * Builds sysfs/procfs look-alike trees for the inventory tests in a temp dir: a spec maps
 * names to file contents (string), symlinks ({ link }) or sub-directories (objects).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type TreeSpec = { [name: string]: string | { link: string } | TreeSpec };

export function isLink(v: unknown): v is { link: string } {
  return typeof v === 'object' && v !== null && typeof (v as { link?: unknown }).link === 'string' && Object.keys(v).length === 1;
}

/** Creates `spec` under `root` (parents of slash-separated names are created too). */
export function buildTree(root: string, spec: TreeSpec): void {
  for (const [name, value] of Object.entries(spec)) {
    const p = path.join(root, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (typeof value === 'string') fs.writeFileSync(p, value);
    else if (isLink(value)) fs.symlinkSync(value.link, p);
    else {
      fs.mkdirSync(p, { recursive: true });
      buildTree(p, value);
    }
  }
}

export function tempRoot(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `qga-${prefix}-`));
}

export function removeTree(root: string): void {
  fs.rmSync(root, { recursive: true, force: true });
}

/** Names in the kernel's readdir order (what qemu-ga sees), for order assertions. */
export function rawOrder(dir: string): string[] {
  const d = fs.opendirSync(dir);
  const out: string[] = [];
  for (let e = d.readSync(); e; e = d.readSync()) out.push(e.name);
  d.closeSync();
  return out;
}
