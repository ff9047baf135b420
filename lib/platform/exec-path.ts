/**
 * Finding the program guest-exec runs, as glib's spawn does with G_SPAWN_SEARCH_PATH
 * (what qemu-ga uses), rather than as libuv does:
 * - a name with a '/' is used as is;
 * - otherwise each PATH directory is tried in order (an empty element is the current
 *   directory). PATH comes from the child's environment when it has one (checked on
 *   qemu-ga 7.2: env ["PATH=/nonexistent"] makes "true" unfindable), else from the agent's
 *   own environment (libuv would use a default list there), else glib's "/bin:/usr/bin:.";
 * - a candidate that exists but cannot be run (a directory, no x bit) is skipped, and if
 *   nothing runnable turns up the failure is EACCES rather than ENOENT, like execvp;
 * - an empty name is ENOENT.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoError, type ErrnoError } from '../errors';

export const GLIB_DEFAULT_PATH = '/bin:/usr/bin:.';

/** The PATH the search uses: the child's env entry when env is given and has one. */
export function searchPathFor(env: readonly string[] | undefined, agentEnv: NodeJS.ProcessEnv = process.env): string {
  if (env) {
    // The first PATH= entry is the one getenv() in the child would see.
    const entry = env.find((e) => e.startsWith('PATH='));
    if (entry !== undefined) return entry.slice(5);
  }
  return agentEnv.PATH ?? GLIB_DEFAULT_PATH;
}

export type Resolved = { file: string } | { error: ErrnoError };

/** Where `name` would be executed from, or the errno execvp would have failed with. */
export function resolveProgram(name: string, searchPath: string): Resolved {
  if (name === '') return { error: errnoError('ENOENT', 'spawn', name) };
  if (name.includes('/')) return { file: name }; // the exec itself reports what is wrong
  let sawEacces = false;
  for (const dir of searchPath.split(':')) {
    const candidate = path.join(dir === '' ? '.' : dir, name);
    let st: fs.Stats;
    try {
      st = fs.statSync(candidate);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EACCES') sawEacces = true;
      continue;
    }
    if (!st.isFile()) { sawEacces = true; continue; }
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
    } catch {
      sawEacces = true;
      continue;
    }
    // Relative PATH entries stay relative to the inherited cwd; "./" keeps spawn from searching again.
    return { file: candidate.includes('/') ? candidate : `./${candidate}` };
  }
  return { error: errnoError(sawEacces ? 'EACCES' : 'ENOENT', 'spawn', name) };
}
