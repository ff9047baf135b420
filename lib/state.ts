import * as fs from 'node:fs';
import * as path from 'node:path';
import { QgaError, strerror } from './errors';

/** What the frozen-state marker records, so a restarted agent (or the thaw guardian) knows. */
export interface FrozenRecord {
  /** Mount points this agent froze, in freeze order. */
  mountpoints: string[];
  /** When the freeze happened (ms since epoch). */
  since: number;
  /** Set when the guardian thawed them because the agent died while frozen. */
  thawedByGuardian?: boolean;
}

/**
 * The state directory, compatible with qemu-ga's: `qga.state` (a key file holding the next
 * file handle, `[global] fd_counter=N`) and the marker `qga.state.isfrozen` whose presence means
 * "frozen" (qemu-ga leaves it empty; node-qga writes the frozen mount points into it as JSON).
 */
export class StateStore {
  private counter = 1000;
  private frozenRecord: FrozenRecord | null = null;

  /** Start-up findings the agent logs as warnings (unsafe directory, ignored files). */
  readonly warnings: string[] = [];

  private constructor(readonly dir: string) {}

  get statePath(): string { return path.join(this.dir, 'qga.state'); }
  get markerPath(): string { return path.join(this.dir, 'qga.state.isfrozen'); }

  static open(dir: string): StateStore {
    const store = new StateStore(dir);
    let st: fs.Stats;
    try { st = fs.statSync(dir); } catch { throw new Error(`unable to create state file at path ${path.join(dir, 'qga.state')}: state directory ${dir} does not exist`); }
    if (!st.isDirectory()) throw new Error(`state directory ${dir} is not a directory`);
    const unsafe = stateDirProblem(dir, st);
    if (unsafe?.refuse) throw new Error(unsafe.text);
    if (unsafe) store.warnings.push(unsafe.text);
    if (store.trusted(store.markerPath)) {
      store.frozenRecord = readMarker(store.markerPath);
    }
    if (store.trusted(store.statePath)) {
      try {
        const m = /^\s*fd_counter\s*=\s*(\d+)\s*$/m.exec(fs.readFileSync(store.statePath, 'latin1'));
        if (m) store.counter = Number(m[1]);
      } catch { /* unreadable: start from the default */ }
    } else if (!store.frozen) {
      // qemu-ga creates the state file at start-up, so an unwritable state directory is
      // caught now rather than at the first guest-file-open. Not while frozen: the state
      // directory may be on a frozen filesystem.
      try {
        writeAtomic(store.statePath, `[global]\nfd_counter=${store.counter}\n`, 0o600);
      } catch (e) {
        throw new Error(`unable to create state file at path ${store.statePath}: ${strerror(e)}`);
      }
    }
    return store;
  }

  /**
   * Whether a state file exists and may be believed: a regular file owned by us or root. Anything
   * else (planted by another user in a sticky shared directory, a symlink) is ignored, loudly.
   */
  private trusted(file: string): boolean {
    let st: fs.Stats;
    try { st = fs.lstatSync(file); } catch { return false; }
    const euid = process.geteuid?.() ?? 0;
    if (st.isFile() && (st.uid === euid || st.uid === 0)) return true;
    this.warnings.push(`ignoring ${file}: ${st.isFile() ? `owned by uid ${st.uid}` : 'not a regular file'}; another user may have planted it`);
    return false;
  }

  get frozen(): boolean { return this.frozenRecord !== null; }
  get frozenInfo(): FrozenRecord | null { return this.frozenRecord; }

  /**
   * Enter frozen state: the marker exists before the first FIFREEZE, so a crash leaves a trace.
   * Written and fsynced on the thread pool: an fsync can take 100 ms on a busy disk.
   */
  async markFrozen(record: FrozenRecord): Promise<void> {
    await this.serialised(() => writeAtomicAsync(this.markerPath, JSON.stringify(record) + '\n', 0o600));
    this.frozenRecord = record;
  }

  /** Update the recorded mount points while freezing. */
  updateFrozen(record: FrozenRecord): Promise<void> { return this.markFrozen(record); }

  /**
   * Leave frozen state. In memory at once (the filesystems are thawed by then); rejects when the
   * marker could not be deleted, so the caller can warn as qemu-ga does.
   */
  async clearFrozen(): Promise<void> {
    this.frozenRecord = null;
    await this.serialised(async () => {
      try { await fs.promises.unlink(this.markerPath); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
    });
  }

  /** Next guest-file handle; persisted (on the pool) before it is handed out so it is never reused. */
  async nextHandle(): Promise<number> {
    return this.serialised(async () => {
      const handle = this.counter;
      try {
        await writeAtomicAsync(this.statePath, `[global]\nfd_counter=${handle + 1}\n`, 0o600);
      } catch {
        throw new QgaError('failed to commit persistent state to disk');
      }
      this.counter = handle + 1;
      return handle;
    });
  }

  /** State files are written one at a time: each write goes through the same temp-file name. */
  private writes: Promise<unknown> = Promise.resolve();
  private serialised<T>(op: () => Promise<T>): Promise<T> {
    const next = this.writes.then(op, op);
    this.writes = next.catch(() => undefined);
    return next;
  }
}

/**
 * Whether another user could plant files in the state directory (docs/SECURITY.md): refused
 * when it is owned by someone other than us or root, or writable by others without the sticky
 * bit; a sticky shared directory (/tmp) is accepted with a warning, since its files owned by
 * others are ignored (StateStore.trusted). qemu-ga checks none of this.
 */
export function stateDirProblem(dir: string, st: fs.Stats): { refuse: boolean; text: string } | null {
  const euid = process.geteuid?.() ?? 0;
  const egid = process.getegid?.() ?? 0;
  const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
  if (st.uid !== euid && st.uid !== 0) {
    return { refuse: true, text: `state directory ${dir} is owned by uid ${st.uid}: refusing to use it (that user could plant the frozen marker); use a directory owned by root` };
  }
  const othersWrite = (st.mode & 0o002) !== 0 || ((st.mode & 0o020) !== 0 && st.gid !== 0 && st.gid !== egid);
  if (!othersWrite) return null;
  if ((st.mode & 0o1000) === 0) {
    return { refuse: true, text: `state directory ${dir} is writable by other users (mode ${mode}): refusing to use it (they could plant the frozen marker); use a root-owned directory that only root can write, such as /run` };
  }
  return { refuse: false, text: `state directory ${dir} is shared with other users (mode ${mode}, sticky): state files they own will be ignored; a private directory such as /run is better` };
}

function readMarker(p: string): FrozenRecord {
  try {
    const text = fs.readFileSync(p, 'utf8').trim();
    if (text) {
      const r = JSON.parse(text) as FrozenRecord;
      if (Array.isArray(r.mountpoints)) return r;
    }
  } catch { /* a qemu-ga marker is empty: frozen, mount points unknown */ }
  return { mountpoints: [], since: 0 };
}

const ATOMIC_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/** Write a small file through a temp file and rename, never following a planted symlink (start-up only). */
export function writeAtomic(file: string, data: string | Buffer, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, ATOMIC_FLAGS, mode);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try { fs.renameSync(tmp, file); } catch (e) { fs.rmSync(tmp, { force: true }); throw e; }
}

/** The same on libuv's thread pool, for writes while serving requests. */
export async function writeAtomicAsync(file: string, data: string | Buffer, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.promises.rm(tmp, { force: true });
  const handle = await fs.promises.open(tmp, ATOMIC_FLAGS, mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  await handle.close();
  try { await fs.promises.rename(tmp, file); } catch (e) { await fs.promises.rm(tmp, { force: true }); throw e; }
}
