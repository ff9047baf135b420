/**
 * guest-exec / guest-exec-status and the guest-ssh-*-authorized-keys commands in the real
 * guest (busybox userland, the qgatest user), on every target including Debian's qemu-ga.
 * The string capture-output modes are 8.0+, so that case skips qemu-ga 7.2.
 */
import { Ctx, VmCase, assert, equal, errorIs } from './harness';

const USER = 'qgatest';
const HOME = `/home/${USER}`;
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('latin1');

async function finished(ctx: Ctx, pid: number): Promise<any> {
  for (let i = 0; i < 400; i++) {
    const s = await ctx.call('guest-exec-status', { pid });
    if (s.exited) return s;
    equal(s, { exited: false }, 'status while running');
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`process ${pid} did not finish`);
}

async function run(ctx: Ctx, args: Record<string, unknown>): Promise<any> {
  const { pid } = await ctx.call('guest-exec', args);
  assert(typeof pid === 'number' && pid > 0, `pid ${pid}`);
  return finished(ctx, pid);
}

export const cases: VmCase[] = [
  {
    name: 'guest-exec: echo with quotes, exit code, stdin from input-data, stdout and stderr apart',
    async run(ctx) {
      equal(await run(ctx, { path: 'echo', arg: ['-n', '" test_str "'], 'capture-output': true }),
        { exitcode: 0, 'out-data': b64('" test_str "'), 'out-truncated': false, exited: true }, 'echo');
      equal(await run(ctx, { path: '/bin/sh', arg: ['-c', 'exit 3'] }), { exitcode: 3, exited: true }, 'exit 3');
      const data = Buffer.from('input\nbytes\u00ff', 'latin1');
      const cat = await run(ctx, { path: 'cat', 'input-data': b64(data), 'capture-output': true });
      equal(unb64(cat['out-data']), data.toString('latin1'), 'cat output');
      const sep = await run(ctx, { path: 'sh', arg: ['-c', 'echo o; echo e >&2'], 'capture-output': true });
      equal([unb64(sep['out-data']), unb64(sep['err-data'])], ['o\n', 'e\n'], 'separated streams');
      const env = await run(ctx, { path: 'env', env: ['ONLY=1'], 'capture-output': true });
      equal(unb64(env['out-data']), 'ONLY=1\n', 'env replaces the environment');
    },
  },
  {
    name: 'guest-exec: a child killed by a signal, no zombie left, status gone once read, errors',
    async run(ctx) {
      const { pid } = await ctx.call('guest-exec', { path: 'sleep', arg: ['100'] });
      equal(await ctx.call('guest-exec-status', { pid }), { exited: false }, 'running');
      await ctx.guestRun(`kill -9 ${pid}`);
      equal(await finished(ctx, pid), { signal: 9, exited: true }, 'killed');
      const stat = await ctx.guestRun(`cat /proc/${pid}/stat 2>/dev/null || echo gone`);
      equal(stat.trim(), 'gone', 'the child was reaped');
      errorIs(await ctx.callError('guest-exec-status', { pid }), 'GenericError', "Invalid parameter 'pid'", 'error text');
      errorIs(await ctx.callError('guest-exec', { path: '/nonexistent/prog' }), 'GenericError',
        "Guest agent command failed, error was 'Failed to execute child process \u201C/nonexistent/prog\u201D (No such file or directory)'", 'error text');
    },
  },
  {
    name: 'guest-exec: merged capture and 16 MiB truncation (capture modes are node-qga / qemu-ga 8.0+)',
    targets: ['native', 'fallback'],
    timeoutMs: 120000,
    async run(ctx) {
      const merged = await run(ctx, { path: 'sh', arg: ['-c', 'echo 1; echo 2 >&2; echo 3'], 'capture-output': 'merged' });
      equal(merged, { exitcode: 0, 'out-data': b64('1\n2\n3\n'), 'out-truncated': false, exited: true }, 'merged');
      const big = await run(ctx, { path: 'head', arg: ['-c', '17000000', '/dev/zero'], 'capture-output': 'stdout' });
      equal([Buffer.from(big['out-data'], 'base64').length, big['out-truncated']], [16777216, true], 'truncated');
    },
  },
  {
    name: 'ssh keys for qgatest: add (creates .ssh 0700 and the file 0600, owned by the user), get, reset, remove',
    async run(ctx) {
      await ctx.guestRun(`rm -rf ${HOME}/.ssh`);
      const K1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne one@host';
      const K2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITwo two@host';
      await ctx.call('guest-ssh-add-authorized-keys', { username: USER, keys: [K1, K2] });
      equal((await ctx.guestRun(`stat -c '%a %u %g' ${HOME}/.ssh ${HOME}/.ssh/authorized_keys`)).trim().split('\n'),
        ['700 1000 1000', '600 1000 1000'], 'modes and owners');
      equal((await ctx.readGuestFile(`${HOME}/.ssh/authorized_keys`)).toString(), `${K1}\n${K2}`, 'file');
      equal(await ctx.call('guest-ssh-get-authorized-keys', { username: USER }), { keys: [K2, K1] }, 'get (reverse order)');
      await ctx.call('guest-ssh-remove-authorized-keys', { username: USER, keys: [K1] });
      equal((await ctx.readGuestFile(`${HOME}/.ssh/authorized_keys`)).toString(), K2, 'after remove');
      await ctx.call('guest-ssh-add-authorized-keys', { username: USER, keys: [K1], reset: true });
      equal((await ctx.readGuestFile(`${HOME}/.ssh/authorized_keys`)).toString(), K1, 'after reset');
      errorIs(await ctx.callError('guest-ssh-add-authorized-keys', { username: USER, keys: ['bad\nkey'] }), 'GenericError', "invalid OpenSSH public key: 'bad\nkey'", 'error text');
      errorIs(await ctx.callError('guest-ssh-get-authorized-keys', { username: 'nosuchuser' }), 'GenericError', "failed to lookup user 'nosuchuser': Success", 'error text');
      await ctx.guestRun(`rm -rf ${HOME}/.ssh`);
    },
  },
  {
    name: 'ssh keys: a .ssh symlink planted by the user is refused (node-qga; qemu-ga follows it)',
    targets: ['native', 'fallback'],
    async run(ctx) {
      await ctx.guestRun(`rm -rf ${HOME}/.ssh; mkdir -p /root/.ssh-target; echo keep > /root/.ssh-target/authorized_keys; ln -s /root/.ssh-target ${HOME}/.ssh`);
      errorIs(await ctx.callError('guest-ssh-add-authorized-keys', { username: USER, keys: ['k'], reset: true }), 'GenericError',
        `refusing to use '${HOME}/.ssh': it is a symbolic link`, 'error text');
      equal((await ctx.readGuestFile('/root/.ssh-target/authorized_keys')).toString(), 'keep\n', 'target untouched');
      await ctx.guestRun(`rm -f ${HOME}/.ssh; rm -rf /root/.ssh-target`);
    },
  },
];
