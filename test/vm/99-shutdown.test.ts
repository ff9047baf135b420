/** Last: guest-shutdown powers the VM off (QEMU exits by itself within a bound). */
import { VmCase, assert } from './harness';

const BOUND_MS = 60000;

export const cases: VmCase[] = [
  {
    name: `guest-shutdown (powerdown) ends the VM: QEMU exits within ${BOUND_MS / 1000} s`,
    timeoutMs: BOUND_MS + 15000,
    async run(ctx) {
      const c = await ctx.client();
      const t = Date.now();
      const reply = await c.call('guest-shutdown', undefined, { noReply: true, timeout: 3000 });
      assert(reply === undefined, `guest-shutdown sends no reply on success, got ${JSON.stringify(reply)}`);
      assert(await ctx.vm.waitExit(BOUND_MS), `QEMU still running ${BOUND_MS / 1000} s after guest-shutdown; console tail:\n${ctx.vm.tail()}`);
      ctx.notes.push(`QEMU exited ${Date.now() - t} ms after the request (code ${ctx.vm.exited?.code})`);
    },
  },
];
