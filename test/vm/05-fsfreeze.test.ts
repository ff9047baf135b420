/**
 * fsfreeze on the real data disk. Guest-side writers are started through the control loop
 * *before* freezing (file commands are disabled while frozen); they wait for the agent's frozen
 * marker and report on the serial console, which the host reads while the guest is frozen.
 */
import { randomBytes } from 'node:crypto';
import { Ctx, VmCase, assert, equal, errorIs, sleep } from './harness';

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
    name: 'agent (and any thaw guardian) killed while frozen: the restarted agent reports frozen, refuses other commands, thaws',
    timeoutMs: 120000,
    async run(ctx) {
      // node-qga's thaw guardian would thaw on the agent's death (see the next case); kill it
      // first to get the situation qemu-ga leaves behind: a frozen disk and a stale marker.
      const job = await ctx.guestStart(`${waitFrozen}
for p in /proc/[0-9]*; do
  if grep -q 'node-qga-thaw-guardia[n]' "$p/cmdline" 2>/dev/null; then
    kill -9 "\${p#/proc/}" && echo "QGA-PROBE killed thaw guardian \${p#/proc/}" > /dev/console
  fi
done
pid=$(cat /run/qga/agent.pid)
echo "QGA-PROBE killing agent $pid" > /dev/console
kill -9 $pid
`);
      await restartWhileFrozen(ctx, job, async () => {
        equal(await ctx.call('guest-fsfreeze-status'), 'frozen', 'status after restart');
        await expectDisabledWhileFrozen(ctx);
        equal(await ctx.call('guest-fsfreeze-thaw'), 1, 'thaw count after restart (the kernel still had /data frozen)');
        equal(await ctx.call('guest-fsfreeze-status'), 'thawed', 'status after thaw');
      });
    },
  },
  {
    name: 'node-qga only (deliberate difference): agent killed while frozen, its thaw guardian thaws /data; the restarted agent reports thawed',
    targets: ['native', 'fallback'],
    timeoutMs: 120000,
    async run(ctx) {
      const job = await ctx.guestStart(`${waitFrozen}
pid=$(cat /run/qga/agent.pid)
echo "QGA-PROBE killing agent $pid" > /dev/console
kill -9 $pid
`);
      const from = ctx.vm.mark();
      await restartWhileFrozen(ctx, job, async () => {
        await ctx.vm.waitForConsole(/thaw guardian thawed/, 5000, from);
        equal(await ctx.call('guest-fsfreeze-status'), 'thawed', 'status after restart');
        equal(await ctx.call('guest-fsfreeze-thaw'), 0, 'thaw count (nothing left frozen)');
      });
    },
  },
];

/** Freeze /data, let the prepared guest job kill the agent, wait for init to restart it, then check. */
async function restartWhileFrozen(ctx: Ctx, job: { done: () => Promise<unknown> }, check: () => Promise<void>) {
  const from = ctx.vm.mark();
  equal(await ctx.call('guest-fsfreeze-freeze-list', { mountpoints: ['/data'] }), 1, 'freeze-list count');
  try {
    await ctx.vm.waitForConsole(/QGA-VM agent-exit pid=\d+ rc=137/, 30000, from);
    await ctx.vm.waitForConsole(/QGA-VM agent-start pid=\d+/, 30000, from);
    ctx.disconnect();
    await check();
  } finally {
    // Whatever happened, leave /data thawed for the cases that follow.
    await ctx.call('guest-fsfreeze-thaw').catch(() => {});
  }
  await job.done();
  const token = randomBytes(4).toString('hex');
  equal((await ctx.guestRun(`echo ${token} > /data/after-thaw.txt && cat /data/after-thaw.txt`, 20000)).trim(), token, 'write to /data after the restart');
}
