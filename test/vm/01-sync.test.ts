/** Sync handshake over the real virtio-serial link, on a fresh and on a dirty channel. */
import * as net from 'node:net';
import { QgaClient, VmCase, assert, equal, sleep } from './harness';

function rawConnect(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path, () => resolve(s));
    s.once('error', reject);
  });
}

export const cases: VmCase[] = [
  {
    name: 'fresh channel: 0xFF + guest-sync-delimited, reply carries the 0xFF sentinel',
    async run(ctx) {
      const c = await ctx.client();
      const id = 987654321;
      c.send(JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } }) + '\n');
      const line = await c.readLine();
      equal(line[0], 0xff, 'first byte of the guest-sync-delimited reply');
      equal(JSON.parse(line.subarray(1).toString()), { return: id }, 'guest-sync-delimited reply');
      c.send(JSON.stringify({ execute: 'guest-sync', arguments: { id: id + 1 } }) + '\n');
      const plain = await c.readLine();
      assert(plain[0] !== 0xff, 'guest-sync reply must not start with 0xFF');
      equal(JSON.parse(plain.toString()), { return: id + 1 }, 'guest-sync reply');
      equal(await ctx.call('guest-ping'), {}, 'guest-ping');
    },
  },
  {
    name: 'dirty channel: half a request left by a previous client, then 0xFF + sync-delimited',
    async run(ctx) {
      const dirty = await rawConnect(ctx.vm.socketPath);
      dirty.write('{"execute":"guest-ping","arguments":{"a":[1,2,');
      await sleep(500); // let the half request reach the agent's parser before hanging up
      dirty.destroy();
      await sleep(300);
      const c = await QgaClient.connect(ctx.vm.socketPath, { timeout: 10000 });
      try {
        equal(await c.call('guest-ping'), {}, 'guest-ping after resync');
        const info = await c.call('guest-info');
        assert(typeof info.version === 'string' && Array.isArray(info.supported_commands), 'guest-info shape');
      } finally {
        c.close();
      }
    },
  },
];
