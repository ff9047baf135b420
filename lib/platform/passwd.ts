/**
 * User lookup by name, as getpwnam() does it for qemu-ga: through NSS (`getent passwd`) when
 * the agent uses the system's /etc/passwd, so directory-service users are found too; by
 * reading the configured passwd file when it is another one (tests, chroots).
 */
import * as fs from 'node:fs';
import { childProcess } from './lazy-builtins';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export const SYSTEM_PASSWD = '/etc/passwd';

/** One passwd(5) line, or undefined if it is not a well-formed entry. */
export function parsePasswdLine(line: string): PasswdEntry | undefined {
  const f = line.split(':');
  if (f.length < 7) return undefined;
  const uid = Number(f[2]), gid = Number(f[3]);
  if (!/^\d+$/.test(f[2]) || !/^\d+$/.test(f[3])) return undefined;
  return { name: f[0], uid, gid, home: f[5] };
}

export function lookupInFile(file: string, name: string): PasswdEntry | undefined {
  if (name === '') return undefined;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    // '+'/'-' NIS compat lines are not users.
    if (line.startsWith('+') || line.startsWith('-')) continue;
    const e = parsePasswdLine(line);
    if (e && e.name === name) return e;
  }
  return undefined;
}

function getent(name: string): Promise<PasswdEntry | undefined | 'unavailable'> {
  return new Promise((resolve) => {
    childProcess().execFile('getent', ['passwd', '--', name], { encoding: 'utf8', timeout: 10000 }, (err, stdout) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return resolve('unavailable');
      if (err) return resolve(undefined); // exit 2: no such user
      // A numeric name would also match a uid: only an entry with this very name counts.
      const e = stdout.split('\n').map(parsePasswdLine).find((x) => x?.name === name);
      resolve(e);
    });
  });
}

/** getpwnam(name); undefined when there is no such user (the empty name never exists). */
export async function lookupUser(name: string, passwdFile = SYSTEM_PASSWD): Promise<PasswdEntry | undefined> {
  if (name === '' || name.includes('\n')) return undefined;
  if (passwdFile === SYSTEM_PASSWD) {
    const r = await getent(name);
    if (r !== 'unavailable') return r;
  }
  return lookupInFile(passwdFile, name);
}
