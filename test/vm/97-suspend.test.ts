/**
 * guest-suspend-ram: where the guest offers S3 ("mem" in /sys/power/state) the VM really
 * suspends (QMP shows it), is woken from the host, and the agent answers again; otherwise the
 * agent must answer "the requested suspend mode is not supported by the guest".
 */
import { VmCase, assert, connectWithRetry, equal, errorIs, sleep } from './harness';

export const cases: VmCase[] = [
  {
    name: 'suspend-ram suspends the VM (seen by QEMU), wake-up from the host, the agent answers again',
    timeoutMs: 120000,
    async run(ctx) {
      const states = (await ctx.readGuestFile('/sys/power/state')).toString().trim();
      ctx.notes.push(`/sys/power/state: ${states}`);
      if (!/\bmem\b/.test(states)) {
        errorIs(await ctx.callError('guest-suspend-ram'), 'GenericError', 'the requested suspend mode is not supported by the guest', 'suspend-ram without S3');
        return;
      }
      const c = await ctx.client();
      const reply = await c.call('guest-suspend-ram', undefined, { noReply: true, timeout: 3000 });
      assert(reply === undefined, `guest-suspend-ram answered ${JSON.stringify(reply)}; success sends nothing`);
      let status = '';
      for (let i = 0; i < 60 && status !== 'suspended'; i++) {
        status = (await ctx.vm.qmp('query-status')).status;
        if (status !== 'suspended') await sleep(500);
      }
      equal(status, 'suspended', 'QEMU run state after suspend-ram');
      await ctx.vm.qmp('system_wakeup');
      ctx.disconnect();
      const again = await connectWithRetry(ctx.vm.socketPath, 60000);
      again.close();
      equal((await ctx.vm.qmp('query-status')).status, 'running', 'QEMU run state after wake-up');
      equal(await ctx.call('guest-ping'), {}, 'guest-ping after wake-up');
    },
  },
];
