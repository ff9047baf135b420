/**
 * `-m vsock-listen -p CID:PORT`. Node has no AF_VSOCK sockets; the address is checked as
 * qemu-ga checks it (both parts unsigned decimal, 32 bits), then the native addon must supply
 * the socket. A build without it answers a clear error instead of pretending.
 */
import { ChannelConfigError } from '../channels';

export interface VsockAddress { cid: number; port: number }

const U32_MAX = 0xffffffff;

/** `<cid>:<port>`, both unsigned decimal (VMADDR_CID_ANY is 4294967295); undefined when malformed. */
export function parseVsockAddress(text: string): VsockAddress | undefined {
  const m = /^([0-9]{1,32}):([0-9]{1,32})$/.exec(text);
  if (!m) return undefined;
  const cid = Number(m[1]);
  const port = Number(m[2]);
  if (cid > U32_MAX || port > U32_MAX) return undefined;
  return { cid, port };
}

/** Validates the address and reports that this build cannot listen on vsock. */
export function checkVsockAddress(path: string | undefined): VsockAddress {
  if (!path) throw new ChannelConfigError('must specify a path for this channel');
  const addr = parseVsockAddress(path);
  if (!addr) throw new ChannelConfigError(`error parsing address '${path}'`);
  return addr;
}

export function vsockUnsupported(path: string): never {
  throw new ChannelConfigError(
    `vsock-listen is not supported by this build: Node.js has no AF_VSOCK sockets and the native addon provides none (address '${path}'); use virtio-serial or unix-listen`,
  );
}
