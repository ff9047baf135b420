/**
 * Last: guest-shutdown powers the VM off (QEMU exits by itself within a bound), and data the
 * agent wrote just before is on the disk image afterwards (read on the host from a copy, after
 * e2fsck has replayed the journal).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VmCase, assert, equal } from './harness';

const BOUND_MS = 60000;

function readFromImage(image: string, file: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-vm-img-'));
  try {
    const copy = path.join(dir, 'data.img');
    fs.copyFileSync(image, copy);
    try {
      execFileSync('e2fsck', ['-f', '-y', copy], { stdio: 'pipe' });
    } catch (e) {
      // exit status 1/2: errors corrected (e.g. journal replayed); 4 and up: real trouble
      const status = (e as { status?: number }).status ?? 8;
      if (status >= 4) throw new Error(`e2fsck on a copy of the data disk failed with status ${status}`);
    }
    return execFileSync('debugfs', ['-R', `cat ${file}`, copy], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const cases: VmCase[] = [
  {
    name: `guest-shutdown (powerdown) ends the VM within ${BOUND_MS / 1000} s; data written just before is on the disk`,
    timeoutMs: BOUND_MS + 30000,
    async run(ctx) {
      const token = randomBytes(8).toString('hex');
      await ctx.writeGuestFile('/data/shutdown-probe.txt', `${token}\n`);
      const c = await ctx.client();
      const from = ctx.vm.mark();
      const t = Date.now();
      const reply = await c.call('guest-shutdown', undefined, { noReply: true, timeout: 3000 });
      assert(reply === undefined, `guest-shutdown sends no reply on success, got ${JSON.stringify(reply)}`);
      assert(await ctx.vm.waitExit(BOUND_MS), `QEMU still running ${BOUND_MS / 1000} s after guest-shutdown; console tail:\n${ctx.vm.tail()}`);
      const orderly = /QGA-VM shutdown/.test(ctx.vm.console.slice(from));
      ctx.notes.push(`QEMU exited ${Date.now() - t} ms after the request (code ${ctx.vm.exited?.code}); init shutdown sequence ${orderly ? 'ran' : 'bypassed'}`);
      equal(readFromImage(ctx.vm.dataImage, '/shutdown-probe.txt'), `${token}\n`, 'file content on the disk image after power-off');
    },
  },
];
