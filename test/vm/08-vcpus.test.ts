/** guest-set-vcpus on a real 2-vCPU guest, checked in /sys/devices/system/cpu/online. */
import { Ctx, VmCase, assert, equal } from './harness';

const onlineList = async (ctx: Ctx) => (await ctx.readGuestFile('/sys/devices/system/cpu/online')).toString().trim();

export const cases: VmCase[] = [
  {
    name: 'set-vcpus offlines cpu1 and brings it back; partial success counts; first failure is an error',
    timeoutMs: 90000,
    async run(ctx) {
      equal(await onlineList(ctx), '0-1', 'online cpus before');
      try {
        equal(await ctx.call('guest-set-vcpus', { vcpus: [{ 'logical-id': 1, online: false }] }), 1, 'offline cpu1');
        equal(await onlineList(ctx), '0', 'online cpus after offlining cpu1');
        const cpu1 = (await ctx.call<any[]>('guest-get-vcpus')).find((c) => c['logical-id'] === 1);
        equal(cpu1, { online: false, 'can-offline': true, 'logical-id': 1 }, 'get-vcpus cpu1 after offlining');
        // Partial success: the first entry works, the second fails -> the count, no error.
        equal(await ctx.call('guest-set-vcpus', { vcpus: [{ 'logical-id': 1, online: true }, { 'logical-id': 7, online: false }] }), 1, 'partial success count');
        equal(await onlineList(ctx), '0-1', 'online cpus after onlining cpu1');
      } finally {
        await ctx.call('guest-set-vcpus', { vcpus: [{ 'logical-id': 1, online: true }] }).catch(() => {});
      }
      const first = await ctx.callError('guest-set-vcpus', { vcpus: [{ 'logical-id': 7, online: true }] });
      assert(first.errorClass === 'GenericError' && /cpu7/.test(first.desc) && /No such file or directory/.test(first.desc), `error for a missing cpu: ${first.errorClass} ${first.desc}`);
      ctx.notes.push(`missing cpu: "${first.desc}"`);
      equal(await ctx.call('guest-set-vcpus', { vcpus: [] }), 0, 'empty list');
    },
  },
  {
    name: 'set-vcpus refuses to offline cpu0 when it has no online switch',
    async run(ctx) {
      const cpu0 = (await ctx.call<any[]>('guest-get-vcpus')).find((c) => c['logical-id'] === 0);
      if (cpu0['can-offline']) {
        ctx.notes.push('cpu0 is hot-pluggable in this kernel: nothing to refuse');
        return;
      }
      const err = await ctx.callError('guest-set-vcpus', { vcpus: [{ 'logical-id': 0, online: false }] });
      equal([err.errorClass, err.desc], ['GenericError', "logical processor #0 can't be offlined"], 'offlining cpu0');
      equal(await onlineList(ctx), '0-1', 'online cpus unchanged');
    },
  },
];
