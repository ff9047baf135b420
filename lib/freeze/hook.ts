/**
 * The fsfreeze hook (-F/--fsfreeze-hook): `<hook> freeze` before freezing, `<hook> thaw` after
 * thawing, with qemu-ga 7.2's checks and error texts. The hook runs in its own session with
 * stdio on /dev/null, as qemu-ga runs it.
 */
import { childProcess } from '../platform/lazy-builtins';
import * as fs from 'node:fs';
import { QgaError, strerror } from '../errors';
import type { Logger } from '../log';

export type HookArg = 'freeze' | 'thaw';

export async function runFsfreezeHook(hook: string | undefined, arg: HookArg, log: Logger): Promise<void> {
  if (!hook) return;
  try {
    fs.accessSync(hook, fs.constants.X_OK);
  } catch (e) {
    throw new QgaError(`can't access fsfreeze hook '${hook}': ${strerror(e)}`);
  }
  log.info(`executing fsfreeze hook with arg '${arg}'`);
  const outcome = await new Promise<{ code: number | null; signal: string | null } | Error>((resolve) => {
    const child = childProcess().spawn(hook, [arg], { stdio: 'ignore', detached: true });
    child.once('error', (e) => resolve(e));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  if (outcome instanceof Error) throw new QgaError(`failed to create child process: ${strerror(outcome)}`);
  if (outcome.code === null) throw new QgaError('fsfreeze hook has terminated abnormally');
  if (outcome.code !== 0) throw new QgaError(`fsfreeze hook has failed with status ${outcome.code}`);
}
