import type { EventEmitter } from 'node:events';

/**
 * A byte channel to the host. Events: 'data' (Buffer), 'connect' (a host/client attached),
 * 'disconnect' (it went away; the agent keeps running and waits for the next one),
 * 'eof' (callback: the client stopped sending; call it once its requests are answered),
 * 'error' (Error; logged, the channel recovers by itself where it can).
 */
export interface Channel extends EventEmitter {
  readonly description: string;
  /** Open the device or start listening. Rejects when that is impossible (bad path, ...). */
  start(): Promise<void>;
  /**
   * Send replies. Resolves once the OS has taken every byte (the buffers may be reused after
   * that); resolves too, dropping the bytes, when the peer is gone: a vanished host never
   * stops the agent.
   */
  write(chunks: ReadonlyArray<Buffer | string>): Promise<void>;
  /**
   * Optional: send replies without waiting for them to be written. The channel takes the
   * bytes before returning (it may keep the chunks, never the array). Returns undefined when
   * more may be sent at once, or a Promise to wait for first (back-pressure: the peer is not
   * reading); a vanished peer drops the bytes, as write() does. For replies whose buffers are
   * not given back after the write.
   */
  send?(chunks: ReadonlyArray<Buffer | string>): Promise<void> | undefined;
  /**
   * Optional: how the channel can tell that everything it delivered has been answered (the
   * unix-listen client uses it to look for the next request before sleeping; see fd-socket.ts).
   */
  setIdleProbe?(idle: () => boolean): void;
  /** Stop reading; a paused channel buffers nothing new (back-pressure while a reply is slow). */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}
