/**
 * node-qga as a library: embed the agent, or reuse its pieces (the qemu-compatible stream
 * decoder and writer, the command table, the backends). The host-side client is in
 * `node-qga/client`.
 */
export { Agent, type AgentOptions } from './agent';
export { Dispatcher } from './dispatcher';
export { allCommands } from './commands';
export { defineCommand, RawReply, type CommandDef, type CommandContext } from './commands/define';
export { selectBackend, createFallbackBackend } from './backend';
export type { SystemBackend, BackendKind } from './backend/types';
export { createChannel } from './channels';
export type { Channel } from './transport/types';
export { parseCommandLine, dumpConfig } from './config';
export { defaultConfig, type AgentConfig, type ChannelMethod } from './config-types';
export { StreamDecoder, type DecodedMessage } from './protocol/decoder';
export { writeJson } from './protocol/encoder';
export { QgaError } from './errors';
export { StateStore } from './state';
export { Logger } from './log';
