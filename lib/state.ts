import * as fs from 'node:fs';
import * as path from 'node:path';
import { QgaError } from './errors';

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

  private constructor(readonly dir: string) {}

  get statePath(): string { return path.join(this.dir, 'qga.state'); }
  get markerPath(): string { return path.join(this.dir, 'qga.state.isfrozen'); }

  static open(dir: string): StateStore {
    const store = new StateStore(dir);
    let st: fs.Stats;
    try { st = fs.statSync(dir); } catch { throw new Error(`unable to create state file at path ${path.join(dir, 'qga.state')}: state directory ${dir} does not exist`); }
    if (!st.isDirectory()) throw new Error(`state directory ${dir} is not a directory`);
    if (fs.existsSync(store.markerPath)) {
      store.frozenRecord = readMarker(store.markerPath);
    }
    try {
      const m = /^\s*fd_counter\s*=\s*(\d+)\s*$/m.exec(fs.readFileSync(store.statePath, 'latin1'));
      if (m) store.counter = Number(m[1]);
    } catch { /* first start: qemu-ga creates it on the first open */ }
    return store;
  }

  get frozen(): boolean { return this.frozenRecord !== null; }
  get frozenInfo(): FrozenRecord | null { return this.frozenRecord; }

  /** Enter frozen state: the marker exists before the first FIFREEZE, so a crash leaves a trace. */
  markFrozen(record: FrozenRecord): void {
    writeAtomic(this.markerPath, JSON.stringify(record) + '\n', 0o600);
    this.frozenRecord = record;
  }

  /** Update the recorded mount points while freezing (each one before its FIFREEZE). */
  updateFrozen(record: FrozenRecord): void { this.markFrozen(record); }

  clearFrozen(): void {
    try { fs.unlinkSync(this.markerPath); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
    this.frozenRecord = null;
  }

  /** Next guest-file handle; persisted before it is handed out so it is never reused. */
  nextHandle(): number {
    const handle = this.counter;
    try {
      writeAtomic(this.statePath, `[global]\nfd_counter=${handle + 1}\n`, 0o600);
    } catch {
      throw new QgaError('failed to commit persistent state to disk');
    }
    this.counter = handle + 1;
    return handle;
  }
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

/** Write a small file through a temp file and rename, never following a planted symlink. */
export function writeAtomic(file: string, data: string | Buffer, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
  try {
    if (typeof data === 'string') fs.writeSync(fd, data); else fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try { fs.renameSync(tmp, file); } catch (e) { fs.rmSync(tmp, { force: true }); throw e; }
}
