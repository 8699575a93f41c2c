/**
 * fsync a directory so the renames in it are durable; best effort (not every platform can open a
 * directory for fsync). Internal (not exported from the package):
 * used by `writeFileAtomically` and the checkpoint-set writer.
 */
export async function syncDirectory(fs: typeof import('node:fs/promises'), directory: string): Promise<void> {
  try {
    const dir = await fs.open(directory, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    /* best effort */
  }
}
