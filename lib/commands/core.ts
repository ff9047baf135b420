import { defineCommand, type Int } from './define';
import { T } from '../schema';
import { realtimeNs } from '../clock';
import { PACKAGE_VERSION } from '../version';

const GuestAgentCommandInfo = T.struct('GuestAgentCommandInfo', { name: T.str, enabled: T.bool, 'success-response': T.bool });
const GuestAgentInfo = T.struct('GuestAgentInfo', { version: T.str, supported_commands: T.list(GuestAgentCommandInfo) });

export const coreCommands = [
  defineCommand<{ id: Int }>({
    name: 'guest-sync-delimited',
    args: { id: T.int },
    returns: T.int,
    allowedWhileFrozen: true,
    delimited: true,
    run: ({ id }) => id,
  }),
  defineCommand<{ id: Int }>({
    name: 'guest-sync',
    args: { id: T.int },
    returns: T.int,
    allowedWhileFrozen: true,
    run: ({ id }) => id,
  }),
  defineCommand({
    name: 'guest-ping',
    allowedWhileFrozen: true,
    run: (_a, ctx) => { ctx.log.info('guest-ping called'); return {}; },
  }),
  defineCommand({
    name: 'guest-get-time',
    returns: T.int,
    run: () => realtimeNs(),
  }),
];

/** guest-info comes after guest-set-time in the schema, so it is exported apart. */
export const infoCommand = defineCommand({
  name: 'guest-info',
  returns: GuestAgentInfo,
  allowedWhileFrozen: true,
  run: (_a, ctx) => ({
    // The build metadata says which backend is live; clients read the version as text.
    version: `${PACKAGE_VERSION}+${ctx.backend.kind}`,
    supported_commands: ctx.registry.list().map((c) => ({ enabled: c.enabled, name: c.name, 'success-response': c.successResponse })),
  }),
});
