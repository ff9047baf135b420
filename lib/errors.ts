/** Error classes qemu-ga puts on the wire. It only ever emits these two. */
export type ErrorClass = 'GenericError' | 'CommandNotFound';

/** An error meant for the host: becomes {"error": {"class", "desc"}}. */
export class QgaError extends Error {
  constructor(readonly desc: string, readonly errorClass: ErrorClass = 'GenericError') {
    super(desc);
    this.name = 'QgaError';
  }
}

/** An error from the OS, shaped like Node's fs errors so both backends look the same. */
export interface ErrnoError extends Error {
  code: string;
  errno: number;
  syscall?: string;
  path?: string;
}

export function isErrnoError(e: unknown): e is ErrnoError {
  return e instanceof Error && typeof (e as ErrnoError).code === 'string';
}

const STRERROR: Record<string, string> = {
  EPERM: 'Operation not permitted', ENOENT: 'No such file or directory', ESRCH: 'No such process',
  EINTR: 'Interrupted system call', EIO: 'Input/output error', ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long', ENOEXEC: 'Exec format error', EBADF: 'Bad file descriptor',
  ECHILD: 'No child processes', EAGAIN: 'Resource temporarily unavailable', ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied', EFAULT: 'Bad address', EBUSY: 'Device or resource busy', EEXIST: 'File exists',
  EXDEV: 'Invalid cross-device link', ENODEV: 'No such device', ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory', EINVAL: 'Invalid argument', ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files', ENOTTY: 'Inappropriate ioctl for device', ETXTBSY: 'Text file busy',
  EFBIG: 'File too large', ENOSPC: 'No space left on device', ESPIPE: 'Illegal seek',
  EROFS: 'Read-only file system', EMLINK: 'Too many links', EPIPE: 'Broken pipe',
  ENAMETOOLONG: 'File name too long', ENOSYS: 'Function not implemented', ENOTEMPTY: 'Directory not empty',
  ELOOP: 'Too many levels of symbolic links', EOPNOTSUPP: 'Operation not supported',
  ENOTSUP: 'Operation not supported', EDQUOT: 'Disk quota exceeded', ETIMEDOUT: 'Connection timed out',
  ECONNREFUSED: 'Connection refused', ECONNRESET: 'Connection reset by peer', EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address', EAFNOSUPPORT: 'Address family not supported by protocol',
  ENOTCONN: 'Transport endpoint is not connected', EOVERFLOW: 'Value too large for defined data type',
};

/** glibc's strerror() text for an errno-coded error, as qemu-ga prints it. */
export function strerror(e: unknown): string {
  if (isErrnoError(e)) return STRERROR[e.code] ?? e.message.replace(/^[A-Z]+: /, '').replace(/,.*$/, '');
  return e instanceof Error ? e.message : String(e);
}

/** Builds an ErrnoError the way Node's fs does. */
export function errnoError(code: string, syscall?: string, path?: string): ErrnoError {
  const e = new Error(`${code}: ${STRERROR[code] ?? code}${syscall ? `, ${syscall}` : ''}${path ? ` '${path}'` : ''}`) as ErrnoError;
  e.code = code;
  e.errno = ERRNO_NUMBERS[code] ?? 0;
  if (syscall) e.syscall = syscall;
  if (path) e.path = path;
  return e;
}

/** Linux errno numbers for the codes the agent reports as integers (memory-block error-code). */
export const ERRNO_NUMBERS: Record<string, number> = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9, ECHILD: 10,
  EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, EXDEV: 18, ENODEV: 19,
  ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25, ETXTBSY: 26, EFBIG: 27,
  ENOSPC: 28, ESPIPE: 29, EROFS: 30, EMLINK: 31, EPIPE: 32, ENAMETOOLONG: 36, ENOSYS: 38,
  ENOTEMPTY: 39, ELOOP: 40, EOPNOTSUPP: 95, ENOTSUP: 95, EDQUOT: 122,
};
