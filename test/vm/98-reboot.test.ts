/** guest-shutdown mode reboot: the guest boots again and the agent answers (QEMU told to reset, not exit). */
import { VmCase, assert, connectWithRetry, equal } from './harness';

export const cases: VmCase[] = [
  {
    name: 'guest-shutdown reboot restarts the guest; the agent answers again',
    timeoutMs: 150000,
    async run(ctx) {
      // The VM runs with -no-reboot (a crash must end the run); for this case a reboot resets.
      await ctx.vm.qmp('set-action', { reboot: 'reset' });
      try {
        const c = await ctx.client();
        const from = ctx.vm.mark();
        const t = Date.now();
        const reply = await c.call('guest-shutdown', { mode: 'reboot' }, { noReply: true, timeout: 3000 });
        assert(reply === undefined, `guest-shutdown answered ${JSON.stringify(reply)}; success sends nothing`);
        await ctx.vm.waitForConsole(/QGA-VM rcS uptime/, 90000, from);
        ctx.disconnect();
        const again = await connectWithRetry(ctx.vm.socketPath, 60000);
        again.close();
        ctx.notes.push(`answered again ${Date.now() - t} ms after the request`);
        assert(!ctx.vm.exited, 'QEMU exited instead of resetting');
        equal(await ctx.call('guest-ping'), {}, 'guest-ping after reboot');
        equal((await ctx.readGuestFile('/proc/uptime')).toString().split('.')[0].length <= 3, true, 'guest uptime restarted');
      } finally {
        if (!ctx.vm.exited) await ctx.vm.qmp('set-action', { reboot: 'shutdown' }).catch(() => {});
      }
    },
  },
];
