/** File commands across the virtio-serial link: checksummed round trip and single transfers of growing size. */
import { createHash, randomBytes } from 'node:crypto';
import { VmCase, assert, equal } from './harness';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const MiB = 1 << 20;

/** One guest-file-write of `size` bytes, then one guest-file-read of the same count. */
function singleTransfer(size: number, label: string): VmCase {
  return {
    name: `single write + single read of ${label} (/tmp)`,
    timeoutMs: 240000,
    async run(ctx) {
      const data = randomBytes(size);
      const path = `/tmp/xfer-${size}.bin`;
      let t = Date.now();
      const h = await ctx.call<number>('guest-file-open', { path, mode: 'w+' });
      const w = await ctx.call('guest-file-write', { handle: h, 'buf-b64': data.toString('base64') }, 180000);
      equal(w, { count: size, eof: false }, 'write reply');
      const writeMs = Date.now() - t;
      equal(await ctx.call('guest-file-seek', { handle: h, offset: 0, whence: 'set' }), { position: 0, eof: false }, 'seek to 0');
      t = Date.now();
      const r = await ctx.call('guest-file-read', { handle: h, count: size }, 180000);
      const readMs = Date.now() - t;
      equal(r.count, size, 'read count');
      assert(sha256(Buffer.from(r['buf-b64'], 'base64')) === sha256(data), 'data read back differs from data written');
      await ctx.call('guest-file-close', { handle: h });
      await ctx.guestRun(`rm -f ${path}`);
      const rate = (ms: number) => `${((size / MiB) / Math.max(ms, 1) * 1000).toFixed(1)} MiB/s`;
      ctx.notes.push(`write ${writeMs} ms (${rate(writeMs)}), read ${readMs} ms (${rate(readMs)})`);
    },
  };
}

export const cases: VmCase[] = [
  {
    name: '8 MiB round trip to /data in 1 MiB writes, checksum verified in the guest and read back',
    timeoutMs: 240000,
    async run(ctx) {
      const data = randomBytes(8 * MiB);
      const t = Date.now();
      await ctx.writeGuestFile('/data/roundtrip.bin', data, MiB);
      const out = await ctx.guestRun('sync; sha256sum /data/roundtrip.bin; stat -c %s /data/roundtrip.bin');
      const [sumLine, sizeLine] = out.trim().split('\n');
      equal(sumLine.split(/\s+/)[0], sha256(data), 'sha256 computed in the guest');
      equal(Number(sizeLine), data.length, 'size in the guest');
      const back = await ctx.readGuestFile('/data/roundtrip.bin', MiB);
      equal(sha256(back), sha256(data), 'sha256 of the data read back');
      ctx.notes.push(`${Date.now() - t} ms`);
      await ctx.guestRun('rm -f /data/roundtrip.bin');
    },
  },
  singleTransfer(4096, '4 KiB'),
  singleTransfer(MiB, '1 MiB'),
  singleTransfer(16 * MiB, '16 MiB'),
];
