/**
 * A minimal reader for the zip container `torch.save` writes (PyTorch ≥ 1.6): every entry is
 * STORED (uncompressed) and 64-byte aligned, so reading an entry is a bounds-checked subarray of
 * the file, with no copy and no inflater. Hand-written rather than a zip library from npm because
 * only the central directory and stored entries are needed (~150 lines, no dependency, works the
 * same in Node and browsers); DEFLATE-compressed entries, which torch never writes, are refused with
 * a clear error. ZIP64 records (files or entries ≥ 4 GiB, > 65535 entries) are parsed.
 */

/** A zip or checkpoint that cannot be read; `entry` names the archive entry when one is at fault. */
export class TorchCheckpointError extends Error {
  readonly entry: string | undefined;
  constructor(message: string, entry?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TorchCheckpointError';
    this.entry = entry;
  }
}

/** One central-directory entry of a zip archive. */
export interface ZipEntry {
  name: string;
  /** 0 = STORED, 8 = DEFLATE. */
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  /** Offset of the entry's local file header. */
  localHeaderOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_EOCD_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;

function u64(view: DataView, offset: number, what: string): number {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new TorchCheckpointError(`zip: ${what} ${value} is too large`);
  return Number(value);
}

/**
 * Parse the central directory of a complete zip file in `bytes`. Throws `TorchCheckpointError` for a
 * truncated file, a missing end-of-central-directory record or out-of-range offsets.
 */
export function readZipDirectory(bytes: Uint8Array): Map<string, ZipEntry> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // End of central directory: 22 bytes + a comment of at most 65535 bytes, searched from the end.
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === EOCD_SIGNATURE) { eocd = i; break; }
  }
  if (eocd < 0) throw new TorchCheckpointError(`zip: no end-of-central-directory record in ${bytes.length} bytes (not a zip file, or truncated)`);
  let count = view.getUint16(eocd + 10, true);
  let dirSize = view.getUint32(eocd + 12, true);
  let dirOffset = view.getUint32(eocd + 16, true);
  if (count === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff) {
    // ZIP64: a 20-byte locator right before the EOCD points at the 56-byte ZIP64 EOCD record.
    const locator = eocd - 20;
    if (locator < 0 || view.getUint32(locator, true) !== ZIP64_EOCD_LOCATOR_SIGNATURE) {
      throw new TorchCheckpointError('zip: ZIP64 end-of-central-directory locator missing');
    }
    const record = u64(view, locator + 8, 'ZIP64 record offset');
    if (record + 56 > bytes.length || view.getUint32(record, true) !== ZIP64_EOCD_SIGNATURE) {
      throw new TorchCheckpointError(`zip: ZIP64 end-of-central-directory record at ${record} is missing or out of range`);
    }
    count = u64(view, record + 32, 'entry count');
    dirSize = u64(view, record + 40, 'central directory size');
    dirOffset = u64(view, record + 48, 'central directory offset');
  }
  if (dirOffset + dirSize > bytes.length) {
    throw new TorchCheckpointError(`zip: central directory [${dirOffset}, ${dirOffset + dirSize}) lies outside the ${bytes.length}-byte file (truncated?)`);
  }
  const entries = new Map<string, ZipEntry>();
  const decoder = new TextDecoder('utf-8', { fatal: false });
  let p = dirOffset;
  for (let n = 0; n < count; n++) {
    if (p + 46 > dirOffset + dirSize || view.getUint32(p, true) !== CENTRAL_SIGNATURE) {
      throw new TorchCheckpointError(`zip: central directory entry ${n} of ${count} at offset ${p} is malformed`);
    }
    const method = view.getUint16(p + 10, true);
    let compressedSize = view.getUint32(p + 20, true);
    let uncompressedSize = view.getUint32(p + 24, true);
    const nameLength = view.getUint16(p + 28, true);
    const extraLength = view.getUint16(p + 30, true);
    const commentLength = view.getUint16(p + 32, true);
    let localHeaderOffset = view.getUint32(p + 42, true);
    const end = p + 46 + nameLength + extraLength + commentLength;
    if (end > dirOffset + dirSize) throw new TorchCheckpointError(`zip: central directory entry ${n} overruns the directory`);
    const name = decoder.decode(bytes.subarray(p + 46, p + 46 + nameLength));
    // ZIP64 extended information (extra field id 1): 8-byte values, only for fields set to 0xffffffff, in this order.
    let e = p + 46 + nameLength;
    const extraEnd = e + extraLength;
    while (e + 4 <= extraEnd) {
      const id = view.getUint16(e, true);
      const size = view.getUint16(e + 2, true);
      if (id === 1) {
        let q = e + 4;
        const take = (what: string): number => {
          if (q + 8 > e + 4 + size) throw new TorchCheckpointError(`zip: ZIP64 extra field of ${JSON.stringify(name)} is too short for its ${what}`, name);
          const v = u64(view, q, what); q += 8; return v;
        };
        if (uncompressedSize === 0xffffffff) uncompressedSize = take('uncompressed size');
        if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take('local header offset');
      }
      e += 4 + size;
    }
    entries.set(name, { name, method, compressedSize, uncompressedSize, localHeaderOffset });
    p = end;
  }
  return entries;
}

/**
 * The bytes of one STORED entry, a view into `bytes` (no copy). Refuses compressed entries and entries
 * whose data lies outside the file.
 */
export function zipEntryBytes(bytes: Uint8Array, entry: ZipEntry): Uint8Array {
  const where = `zip entry ${JSON.stringify(entry.name)}`;
  if (entry.method !== 0) {
    const kind = entry.method === 8 ? 'DEFLATE-compressed' : `compressed with method ${entry.method}`;
    throw new TorchCheckpointError(`${where} is ${kind}; only STORED entries (as torch.save writes them) can be read`, entry.name);
  }
  if (entry.compressedSize !== entry.uncompressedSize) {
    throw new TorchCheckpointError(`${where}: STORED entry has compressed size ${entry.compressedSize} != size ${entry.uncompressedSize}`, entry.name);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = entry.localHeaderOffset;
  if (h + 30 > bytes.length || view.getUint32(h, true) !== LOCAL_SIGNATURE) {
    throw new TorchCheckpointError(`${where}: local header at offset ${h} is missing or outside the ${bytes.length}-byte file`, entry.name);
  }
  const start = h + 30 + view.getUint16(h + 26, true) + view.getUint16(h + 28, true);
  const end = start + entry.uncompressedSize;
  if (end > bytes.length) {
    throw new TorchCheckpointError(`${where}: data [${start}, ${end}) lies outside the ${bytes.length}-byte file (truncated?)`, entry.name);
  }
  return bytes.subarray(start, end);
}
