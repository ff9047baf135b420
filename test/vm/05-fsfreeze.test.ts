/**
 * fsfreeze on the real data disk. Guest-side writers are started through the control loop
 * *before* freezing (file commands are disabled while frozen); they wait for the agent's frozen
 * marker and report on the serial console, which the host reads while the guest is frozen.
 */
import { randomBytes } from 'node:crypto';
import { Ctx, VmCase, assert, connectWithRetry, equal, errorIs, sleep } from './harness';

const MARKER = '/run/qga/qga.state.isfrozen';

/** Shell lines that wait (max 20 s) until the agent has entered frozen state, plus a margin for the ioctl. */
const waitFrozen = `i=0; while [ ! -e ${MARKER} ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; sleep 1`;

async function expectDisabledWhileFrozen(ctx: Ctx) {
  const err = await ctx.callError('guest-get-time');
  errorIs(err, 'CommandNotFound', /^Command guest-get-time has been disabled(: the agent is in frozen state|: the command is not allowed)?$/, 'guest-get-time while frozen');
}

export const cases: VmCase[] = [
  {
    name: 'status thawed; freeze-list ["/data"] = 1; status frozen; other commands disabled; thaw = 1; status thawed',
    async run(ctx) {
      equal(await ctx.call('guest-fsfreeze-status'), 'thawed', 'status before');
      equal(await ctx.call('guest-fsfreeze-freeze-list', { mountpoints: ['/data'] }), 1, 'freeze-list count');
      try {
        equal(await ctx.call('guest-fsfreeze-status'), 'frozen', 'status while frozen');
        await expectDisabledWhileFrozen(ctx);
        equal(await ctx.call('guest-ping'), {}, 'guest-ping while frozen');
      } finally {
        equal(await ctx.call('guest-fsfreeze-thaw'), 1, 'thaw count');
      }
      equal(await ctx.call('guest-fsfreeze-status'), 'thawed', 'status after');
      equal(await ctx.call('guest-fsfreeze-thaw'), 0, 'second thaw count');
    },
  },
  {
    name: 'freeze (all) counts the one block filesystem; freeze-list of an unknown mountpoint = 0',
    async run(ctx) {
      equal(await ctx.call('guest-fsfreeze-freeze-list', { mountpoints: ['/no/such/mount'] }), 0, 'freeze-list of an unknown path');
      equal(await ctx.call('guest-fsfreeze-status'), 'thawed', 'status after a freeze of nothing');
      equal(await ctx.call('guest-fsfreeze-freeze'), 1, 'freeze count (only /data is on a block device)');
      equal(await ctx.call('guest-fsfreeze-thaw'), 1, 'thaw count');
    },
  },
  {
    name: 'a guest process writing to frozen /data blocks until thaw, and its data lands',
    timeoutMs: 90000,
    async run(ctx) {
      const token = randomBytes(8).toString('hex');
      const job = await ctx.guestStart(`${waitFrozen}
echo "QGA-PROBE write-begin ${token}" > /dev/console
echo ${token} > /data/frozen-probe.txt
echo "QGA-PROBE write-end ${token}" > /dev/console
`);
      const from = ctx.vm.mark();
      equal(await ctx.call('guest-fsfreeze-freeze-list', { mountpoints: ['/data'] }), 1, 'freeze-list count');
      let thawed = false;
      try {
        await ctx.vm.waitForConsole(new RegExp(`QGA-PROBE write-begin ${token}`), 30000, from);
        await sleep(3000);
        assert(!new RegExp(`write-end ${token}`).test(ctx.vm.console.slice(from)), 'the write completed while /data was frozen');
        const thawAt = ctx.vm.mark();
        equal(await ctx.call('guest-fsfreeze-thaw'), 1, 'thaw count');
        thawed = true;
        await ctx.vm.waitForConsole(new RegExp(`QGA-PROBE write-end ${token}`), 15000, thawAt);
      } finally {
        if (!thawed) await ctx.call('guest-fsfreeze-thaw').catch(() => {});
      }
      await job.done();
      equal((await ctx.readGuestFile('/data/frozen-probe.txt')).toString(), `${token}\n`, 'file written during the freeze');
    },
  },
  {
    name: 'agent killed while frozen: the restarted agent reports frozen, refuses other commands, thaws',
    timeoutMs: 120000,
    async run(ctx) {
      const job = await ctx.guestStart(`${waitFrozen}
pid=$(cat /run/qga/agent.pid)
echo "QGA-PROBE killing agent $pid" > /dev/console
kill -9 $pid
`);
      const from = ctx.vm.mark();
      equal(await ctx.call('guest-fsfreeze-freeze-list', { mountpoints: ['/data'] }), 1, 'freeze-list count');
      let thawed = false;
      try {
        await ctx.vm.waitForConsole(/QGA-VM agent-exit pid=\d+ rc=137/, 30000, from);
        await ctx.vm.waitForConsole(/QGA-VM agent-start pid=\d+/, 30000, from);
        ctx.disconnect();
        const c = await connectWithRetry(ctx.vm.socketPath, 30000);
        c.close();
        equal(await ctx.call('guest-fsfreeze-status'), 'frozen', 'status after restart');
        await expectDisabledWhileFrozen(ctx);
        equal(await ctx.call('guest-fsfreeze-thaw'), 1, 'thaw count after restart (the kernel still had /data frozen)');
        thawed = true;
        equal(await ctx.call('guest-fsfreeze-status'), 'thawed', 'status after thaw');
      } finally {
        if (!thawed) await ctx.call('guest-fsfreeze-thaw').catch(() => {});
      }
      await job.done();
      equal((await ctx.guestRun('echo written > /data/after-thaw.txt && cat /data/after-thaw.txt')).trim(), 'written', 'write after thaw');
    },
  },
];
