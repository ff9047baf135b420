/**
 * Rewrites one user's password in a shadow(5) file the way shadow-utils' own tools do:
 * under `<file>.lock` (linked into place already holding our pid), through `<file>+` in the same
 * directory (same mode and owner, fsync'd) renamed over the original, so readers only ever
 * see the old or the new file. Only fields 2 (the hash) and 3 (date of last change, days since
 * the epoch) of the user's line change; every other byte stays as it was.
 *
 * Not done: lckpwdf()'s fcntl lock on /etc/.pwd.lock, SELinux labels (the new file gets the
 * directory's default context), telling nscd to flush its cache.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ShadowUpdateOptions {
  /** Time of the change, for field 3 (default: now). */
  now?: number | Date;
  /** How long to wait for another holder of the lock (default 5000 ms). */
  lockTimeoutMs?: number;
}

const DAY_MS = 86_400_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A lock without a readable pid this old was abandoned mid-creation (by an older node-qga). */
const PIDLESS_LOCK_STALE_MS = 10_000;

/**
 * Takes `<file>.lock`; a lock left by a dead process is broken. Resolves with the release function.
 * As shadow-utils does, the pid is written to `<file>.lock.<pid>` first and hard-linked into place,
 * so the lock never exists without its holder's pid: a SIGKILL between creating and writing it
 * used to leave an empty lock that no later run could break.
 */
export async function lockShadowFile(file: string, timeoutMs = 5000): Promise<() => void> {
  const lockPath = `${file}.lock`;
  const mine = `${lockPath}.${process.pid}`;
  const deadline = Date.now() + timeoutMs;
  await removeDeadLockTemps(file);
  await fs.promises.writeFile(mine, String(process.pid), { mode: 0o600 });
  try {
    for (;;) {
      try {
        await fs.promises.link(mine, lockPath);
        return () => {
          try {
            fs.unlinkSync(lockPath);
          } catch {
            /* already gone */
          }
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      let holder = NaN;
      let age = 0;
      try {
        holder = parseInt(await fs.promises.readFile(lockPath, 'latin1'), 10);
        age = Date.now() - (await fs.promises.stat(lockPath)).mtimeMs;
      } catch {
        continue; // released meanwhile: try again at once
      }
      const dead = Number.isInteger(holder) && holder > 0 ? holder !== process.pid && !processAlive(holder) : age > PIDLESS_LOCK_STALE_MS;
      if (dead) {
        await fs.promises.unlink(lockPath).catch(() => undefined); // someone else may have broken it first
        continue;
      }
      if (Date.now() >= deadline) throw new Error(`cannot lock ${file}: it is being edited by process ${Number.isNaN(holder) ? '?' : holder}`);
      await sleep(50);
    }
  } finally {
    await fs.promises.unlink(mine).catch(() => undefined);
  }
}

/** `<file>.lock.<pid>` names left by processes killed while taking the lock. */
async function removeDeadLockTemps(file: string): Promise<void> {
  const prefix = `${path.basename(file)}.lock.`;
  let names: string[];
  try { names = await fs.promises.readdir(path.dirname(file)); } catch { return; }
  for (const name of names) {
    if (!name.startsWith(prefix) || !/^\d+$/.test(name.slice(prefix.length))) continue;
    const pid = Number(name.slice(prefix.length));
    if (pid !== process.pid && !processAlive(pid)) await fs.promises.unlink(path.join(path.dirname(file), name)).catch(() => undefined);
  }
}

/**
 * Returns `content` with `user`'s hash and last-change day replaced. Throws when the user has
 * no line. Works on latin1 text so that any byte sequence round-trips unchanged.
 */
export function replaceShadowEntry(content: Buffer, user: string, hash: string, day: number): Buffer {
  const text = content.toString('latin1');
  const prefix = `${Buffer.from(user, 'utf8').toString('latin1')}:`;
  const lines = text.split('\n');
  const index = user === '' ? -1 : lines.findIndex((l) => l.startsWith(prefix));
  if (index < 0) throw new Error(`user '${user}' does not exist`);
  const fields = lines[index].split(':');
  while (fields.length < 3) fields.push('');
  fields[1] = hash;
  fields[2] = String(day);
  lines[index] = fields.join(':');
  return Buffer.from(lines.join('\n'), 'latin1');
}

/** Set `user`'s password hash in `shadowFile` atomically (see the file comment). */
export async function setShadowPassword(shadowFile: string, user: string, hash: string, options: ShadowUpdateOptions = {}): Promise<void> {
  // Either would let a caller forge or corrupt other lines.
  if (/[:\n]/.test(user)) throw new Error('forbidden characters in username');
  if (/[:\n]/.test(hash)) throw new Error('the password hash contains forbidden characters');
  const now = options.now === undefined ? Date.now() : Number(options.now);
  const day = Math.floor(now / DAY_MS);
  const release = await lockShadowFile(shadowFile, options.lockTimeoutMs);
  const temp = `${shadowFile}+`;
  try {
    const st = await fs.promises.stat(shadowFile);
    const updated = replaceShadowEntry(await fs.promises.readFile(shadowFile), user, hash, day);
    const handle = await fs.promises.open(temp, 'w', 0o600);
    try {
      await handle.chmod(st.mode & 0o7777);
      if (st.uid !== process.getuid?.() || st.gid !== process.getgid?.()) await handle.chown(st.uid, st.gid);
      await handle.writeFile(updated);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.promises.rename(temp, shadowFile);
    await syncDirectory(path.dirname(shadowFile));
  } catch (e) {
    await fs.promises.unlink(temp).catch(() => undefined);
    throw e;
  } finally {
    release();
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
