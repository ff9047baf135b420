import * as fs from 'node:fs';

/**
 * A directory's entries in the order the kernel returns them (readdir order), without "."
 * and "..". fs.readdirSync sorts names (libuv's scandir uses strcmp), but qemu-ga walks
 * several sysfs directories with readdir() and its replies keep that unsorted order.
 * Throws the ErrnoError of opendir().
 */
export function readdirInKernelOrder(path: string): fs.Dirent[] {
  const dir = fs.opendirSync(path);
  const out: fs.Dirent[] = [];
  try {
    for (let entry = dir.readSync(); entry; entry = dir.readSync()) out.push(entry);
  } finally {
    dir.closeSync();
  }
  return out;
}
