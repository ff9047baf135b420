/** Bad input across the real link: the agent answers with errors and keeps serving. */
import * as net from 'node:net';
import { VmCase, assert, connectWithRetry, equal, sleep } from './harness';

export const cases: VmCase[] = [
  {
    name: 'garbage bytes get a parse error; the link resyncs and serves',
    async run(ctx) {
      const c = await ctx.client();
      c.send(Buffer.from([0x01, 0x7f, 0x25, 0x20]));
      c.send('{"execute": guest-ping}\n');
      const r = await c.readReply(10000);
      assert(r.error && r.error.class === 'GenericError' && /JSON parse error/.test(r.error.desc), `expected a JSON parse error, got ${JSON.stringify(r)}`);
      await c.sync();
      equal(await ctx.call('guest-ping'), {}, 'guest-ping after garbage');
    },
  },
  {
    name: 'oversized requests: 4 MiB argument and 1100-deep nesting are refused; the agent keeps serving',
    timeoutMs: 120000,
    async run(ctx) {
      const c = await ctx.client();
      c.send(`{"execute":"guest-ping","arguments":{"x":"${'A'.repeat(4 << 20)}"}}`);
      const r = await c.readReply(90000);
      assert(r.error && r.error.class === 'GenericError' && /'x'/.test(r.error.desc), `expected a refusal of argument x, got ${JSON.stringify(r).slice(0, 200)}`);
      c.send(`{"execute":"guest-ping","arguments":{"x":${'['.repeat(1100)}${']'.repeat(1100)}}}\n`);
      const deep = await c.readReply(30000);
      assert(deep.error && deep.error.class === 'GenericError', `expected an error for deep nesting, got ${JSON.stringify(deep).slice(0, 200)}`);
      ctx.notes.push(`deep nesting: "${deep.error.desc}"`);
      await c.sync(30000); // skips whatever else the nesting produced
      equal(await ctx.call('guest-ping'), {}, 'guest-ping afterwards');
    },
  },
  {
    name: 'client disconnects in the middle of a 16 MiB read reply; the next client is served',
    timeoutMs: 180000,
    async run(ctx) {
      await ctx.guestRun('dd if=/dev/urandom of=/tmp/midreply.bin bs=1M count=16 2>/dev/null');
      const h = await ctx.call<number>('guest-file-open', { path: '/tmp/midreply.bin', mode: 'r' });
      ctx.disconnect();
      const s = await new Promise<net.Socket>((resolve, reject) => {
        const sock = net.connect(ctx.vm.socketPath, () => resolve(sock));
        sock.once('error', reject);
      });
      let got = 0;
      const firstBytes = new Promise<void>((resolve) => s.on('data', (d) => { got += d.length; if (got > 65536) resolve(); }));
      s.write(`{"execute":"guest-file-read","arguments":{"handle":${h},"count":${16 << 20}}}\n`);
      await Promise.race([firstBytes, sleep(90000)]);
      assert(got > 65536, `the reply did not start within 90 s (${got} bytes)`);
      s.destroy();
      ctx.notes.push(`hung up after ${got} of ~${Math.ceil((16 << 20) / 3) * 4} reply bytes`);
      await sleep(500);
      const c = await connectWithRetry(ctx.vm.socketPath, 90000);
      try {
        equal(await c.call('guest-ping'), {}, 'guest-ping on the next connection');
        await c.call('guest-file-close', { handle: h });
      } finally {
        c.close();
      }
      await ctx.guestRun('rm -f /tmp/midreply.bin');
    },
  },
];
