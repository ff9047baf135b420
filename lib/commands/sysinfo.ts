import * as os from 'node:os';
import { defineCommand } from './define';
import { T } from '../schema';
import { QgaError } from '../errors';
import { JsonFloat, type JsonValue } from '../protocol/values';
import { DEFAULT_UTMP_FILE, loggedInUsers, readUtmp } from '../platform/utmp';
import { osReleaseCandidates, readOsReleaseFields } from '../platform/os-release';
import { localZoneAt } from '../platform/tzfile';

declare module '../config-types' {
  interface AgentConfig {
    /** The utmp file guest-get-users reads (default /var/run/utmp, glibc's _PATH_UTMPX). */
    utmpFile?: string;
  }
}

/**
 * Guest identity commands qemu-ga gained after 2.4 (2.10 and 5.2): host name, logged-in
 * users, time zone, OS release, and guest-get-devices, which qemu-ga 7.2 registers on Linux
 * but keeps disabled (it only has a Windows implementation).
 */

export const GuestHostName = T.struct('GuestHostName', { 'host-name': T.str });
export const GuestUser = T.struct('GuestUser', { user: T.str, 'login-time': T.number, '*domain': T.str });
export const GuestTimezone = T.struct('GuestTimezone', { '*zone': T.str, offset: T.int });
export const GuestOSInfo = T.struct('GuestOSInfo', {
  '*kernel-release': T.str, '*kernel-version': T.str, '*machine': T.str, '*id': T.str, '*name': T.str,
  '*pretty-name': T.str, '*version': T.str, '*version-id': T.str, '*variant': T.str, '*variant-id': T.str,
});
const GuestDeviceInfo = T.struct('GuestDeviceInfo', {
  'driver-name': T.str, '*driver-date': T.int, '*driver-version': T.str,
  '*id': T.struct('GuestDeviceId', { type: T.enum('GuestDeviceType', ['pci']), 'vendor-id': T.int, 'device-id': T.int }),
});

export function getHostName(): { 'host-name': string } {
  let name: string;
  try {
    name = os.hostname(); // gethostname(), not cached: a renamed guest answers its new name
  } catch {
    name = 'localhost';
  }
  return { 'host-name': name };
}

export function getUsers(utmpFile: string): Array<{ user: string; 'login-time': JsonFloat }> {
  // login-time is a QAPI 'number': JsonFloat keeps it a double on the wire (%.17g).
  return loggedInUsers(readUtmp(utmpFile)).map((u) => ({ user: u.user, 'login-time': new JsonFloat(u.loginTime) }));
}

export function getTimezone(nowMs = Date.now(), env: NodeJS.ProcessEnv = process.env): { zone?: string; offset: number } {
  const zone = localZoneAt(Math.floor(nowMs / 1000), env);
  return { zone: zone.abbreviation, offset: zone.offset };
}

export interface OsInfo {
  'kernel-release'?: string; 'kernel-version'?: string; machine?: string; id?: string; name?: string;
  'pretty-name'?: string; version?: string; 'version-id'?: string; variant?: string; 'variant-id'?: string;
}

export function getOsinfo(env: NodeJS.ProcessEnv = process.env): OsInfo {
  let uname: { release: string; version: string; machine: string };
  try {
    uname = { release: os.release(), version: os.version(), machine: os.machine() };
  } catch (e) {
    throw new QgaError(`uname failed: ${(e as Error).message}`);
  }
  const release = readOsReleaseFields(osReleaseCandidates(env));
  // Members in schema order (the reply's key order depends on it).
  const info: OsInfo = { 'kernel-release': uname.release, 'kernel-version': uname.version, machine: uname.machine };
  for (const key of ['id', 'name', 'pretty-name', 'version', 'version-id', 'variant', 'variant-id'] as const) {
    if (release[key] !== undefined) info[key] = release[key];
  }
  return info;
}

export const sysinfoCommands = [
  defineCommand({
    name: 'guest-get-host-name',
    returns: GuestHostName,
    run: () => getHostName(),
  }),
  defineCommand({
    name: 'guest-get-users',
    returns: T.list(GuestUser),
    run: (_a, ctx) => getUsers(ctx.config.utmpFile ?? DEFAULT_UTMP_FILE) as unknown as JsonValue,
  }),
  defineCommand({
    name: 'guest-get-timezone',
    returns: GuestTimezone,
    run: () => getTimezone() as JsonValue,
  }),
  defineCommand({
    name: 'guest-get-osinfo',
    returns: GuestOSInfo,
    run: () => getOsinfo() as JsonValue,
  }),
  defineCommand({
    name: 'guest-get-devices',
    returns: T.list(GuestDeviceInfo),
    // Windows only: qemu-ga 7.2 lists it on Linux as disabled, and the dispatcher answers
    // "Command guest-get-devices has been disabled" without calling run.
    unsupported: true,
    run: () => { throw new QgaError('Command guest-get-devices has been disabled', 'CommandNotFound'); },
  }),
];
