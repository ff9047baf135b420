/** guest-set-memory-blocks on real guest memory (sysfs state read back through guest-file-read). */
import { Ctx, VmCase, assert, equal } from './harness';

const state = async (ctx: Ctx, i: number) => (await ctx.readGuestFile(`/sys/devices/system/memory/memory${i}/state`)).toString().trim();

export const cases: VmCase[] = [
  {
    name: 'set-memory-blocks: offline a removable block and back (or a clear operation-failed), not-found, no-op',
    timeoutMs: 180000,
    async run(ctx) {
      const blocks: any[] = await ctx.call('guest-get-memory-blocks');
      const candidates = blocks.filter((b) => b.online && b['can-offline']).sort((a, b) => b['phys-index'] - a['phys-index']).slice(0, 3);
      assert(candidates.length > 0, `no online, offlinable block in ${JSON.stringify(blocks)}`);
      let offlined: number | null = null;
      const failures: string[] = [];
      for (const b of candidates) {
        const idx = b['phys-index'];
        const [r] = await ctx.call<any[]>('guest-set-memory-blocks', { 'mem-blks': [{ 'phys-index': idx, online: false }] }, 170000);
        if (r.response === 'success') {
          equal(r, { response: 'success', 'phys-index': idx }, `offline reply for block ${idx}`);
          offlined = idx;
          break;
        }
        equal(r.response, 'operation-failed', `offline response for block ${idx}`);
        assert(typeof r['error-code'] === 'number' && r['error-code'] > 0, `operation-failed needs an errno: ${JSON.stringify(r)}`);
        failures.push(`block ${idx}: errno ${r['error-code']}`);
        equal(await state(ctx, idx), 'online', `block ${idx} state after a failed offline`);
      }
      if (offlined !== null) {
        try {
          equal(await state(ctx, offlined), 'offline', `sysfs state of block ${offlined}`);
          const listed = (await ctx.call<any[]>('guest-get-memory-blocks')).find((b) => b['phys-index'] === offlined);
          equal(listed.online, false, `get-memory-blocks online flag of block ${offlined}`);
        } finally {
          const [back] = await ctx.call<any[]>('guest-set-memory-blocks', { 'mem-blks': [{ 'phys-index': offlined, online: true }] }, 60000);
          equal(back, { response: 'success', 'phys-index': offlined }, 'online again');
        }
        equal(await state(ctx, offlined), 'online', `sysfs state of block ${offlined} after onlining`);
        ctx.notes.push(`block ${offlined} went offline and back${failures.length ? ` (${failures.join(', ')})` : ''}`);
      } else {
        ctx.notes.push(`no block could go offline: ${failures.join(', ')}`);
      }
      const idx0 = candidates[0]['phys-index'];
      equal(await ctx.call('guest-set-memory-blocks', { 'mem-blks': [{ 'phys-index': idx0, online: true }, { 'phys-index': 4096, online: false }] }),
        [{ response: 'success', 'phys-index': idx0 }, { response: 'not-found', 'error-code': 2, 'phys-index': 4096 }], 'already online + missing block');
      equal(await ctx.call('guest-set-memory-blocks', { 'mem-blks': [] }), [], 'empty list');
    },
  },
];
