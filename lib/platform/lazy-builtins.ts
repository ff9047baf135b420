/**
 * Node built-ins that cost milliseconds to load (child_process ≈9 ms, crypto ≈4 ms) and that
 * serving the first request never needs: loaded on first use instead of at start-up.
 */
import type * as ChildProcessModule from 'node:child_process';
import type * as CryptoModule from 'node:crypto';

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const childProcess = (): typeof ChildProcessModule => require('node:child_process');
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const crypto = (): typeof CryptoModule => require('node:crypto');
