/** guest-set-user-password for a test user, checked in /etc/shadow read back from the guest. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Ctx, VmCase, assert, equal, errorIs } from './harness';

const USER = 'qgatest';
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** crypt(3) on the host (python3's crypt module over libxcrypt; deprecated but present up to 3.12). */
function hostCrypt(password: string, salt: string | null): string {
  const code = 'import crypt,sys\nsalt = sys.argv[2] or crypt.mksalt(crypt.METHOD_SHA512)\nprint(crypt.crypt(sys.argv[1], salt))';
  return execFileSync(PYTHON, ['-W', 'ignore', '-c', code, password, salt ?? ''], { encoding: 'utf8' }).trim();
}

async function shadow(ctx: Ctx): Promise<string[]> {
  return (await ctx.readGuestFile('/etc/shadow')).toString().split('\n').filter(Boolean);
}

function entry(lines: string[], user: string): string[] {
  const line = lines.find((l) => l.startsWith(`${user}:`));
  assert(line, `no ${user} in /etc/shadow`);
  return line.split(':');
}

function othersUnchanged(before: string[], after: string[]) {
  equal(after.filter((l) => !l.startsWith(`${USER}:`)), before.filter((l) => !l.startsWith(`${USER}:`)), 'other /etc/shadow entries');
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

export const cases: VmCase[] = [
  {
    name: 'clear-text password: /etc/shadow gets a hash that verifies, other entries, mode and owner kept',
    timeoutMs: 90000,
    async run(ctx) {
      const before = await shadow(ctx);
      const password = 'Clear text 1!';
      await ctx.call('guest-set-user-password', { username: USER, password: b64(password), crypted: false });
      const after = await shadow(ctx);
      const hash = entry(after, USER)[1];
      assert(/^\$(y|6|5|2b|1)\$/.test(hash), `not a crypt hash: ${hash}`);
      equal(hostCrypt(password, hash), hash, 'hash verified on the host');
      assert(hostCrypt('wrong', hash) !== hash, 'a wrong password must not verify');
      othersUnchanged(before, after);
      equal((await ctx.guestRun('stat -c "%a %u %g" /etc/shadow')).trim(), '640 0 42', 'mode, owner, group of /etc/shadow');
      ctx.notes.push(`hash method ${hash.split('$')[1]}`);
    },
  },
  {
    name: 'crypted password: /etc/shadow holds exactly the given hash',
    timeoutMs: 90000,
    async run(ctx) {
      const before = await shadow(ctx);
      const hash = hostCrypt('Crypted pass 2', null);
      await ctx.call('guest-set-user-password', { username: USER, password: b64(hash), crypted: true });
      const after = await shadow(ctx);
      equal(entry(after, USER)[1], hash, 'stored hash');
      othersUnchanged(before, after);
      equal((await ctx.guestRun('stat -c "%a %u %g" /etc/shadow')).trim(), '640 0 42', 'mode, owner, group of /etc/shadow');
    },
  },
  {
    name: 'forbidden characters and unknown user are refused, /etc/shadow untouched',
    async run(ctx) {
      const before = await shadow(ctx);
      errorIs(await ctx.callError('guest-set-user-password', { username: 'qga:test', password: b64('x'), crypted: false }), 'GenericError', 'forbidden characters in username', 'username with ":"');
      errorIs(await ctx.callError('guest-set-user-password', { username: USER, password: b64('a\nb'), crypted: false }), 'GenericError', 'forbidden characters in raw password', 'password with newline');
      errorIs(await ctx.callError('guest-set-user-password', { username: 'nosuchuser', password: b64('x'), crypted: false }), 'GenericError', /^child process has failed to set user password/, 'unknown user');
      equal(await shadow(ctx), before, '/etc/shadow after refused requests');
    },
  },
];
