/** guest-fstrim on the freshly made data disk (QEMU passes discards through: discard=unmap). */
import { VmCase, assert, equal } from './harness';

export const cases: VmCase[] = [
  {
    name: 'fstrim reports trimmed bytes for /data',
    timeoutMs: 120000,
    async run(ctx) {
      const r = await ctx.call('guest-fstrim', {}, 110000);
      assert(r && Array.isArray(r.paths), `reply shape: ${JSON.stringify(r)}`);
      const data = r.paths.find((p: any) => p.path === '/data');
      assert(data, `no /data in ${JSON.stringify(r.paths)}`);
      assert(data.error === undefined, `/data trim error: ${data.error}`);
      equal(data.minimum, 0, 'minimum');
      assert(typeof data.trimmed === 'number' && data.trimmed > 0, `trimmed should be > 0: ${JSON.stringify(data)}`);
      ctx.notes.push(`trimmed ${data.trimmed} B`);
    },
  },
];
