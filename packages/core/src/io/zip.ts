/**
 * A minimal reader for the zip container `torch.save` writes (PyTorch ≥ 1.6): every entry is
 * STORED (uncompressed) and 64-byte aligned, so reading an entry is a bounds-checked subarray of
 * the file, with no copy and no inflater. Hand-written rather than a zip library from npm: fflate and
 * jszip read whole archives into memory and bring inflaters torch files never need, yauzl is
 * Node-only, unzipit is async-only; only the central directory and stored entries are needed here
 * (a few hundred lines, no dependency, synchronous on bytes and range reads on files, the same in Node
 * and browsers). DEFLATE-compressed entries, which torch never writes, are refused with a clear error.
 * ZIP64 records (files or entries ≥ 4 GiB, > 65535 entries) are parsed.
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

/** Where the central directory is, as the end records say. */
export interface ZipDirectoryLocation {
  count: number;
  offset: number;
  size: number;
}

/** Bytes of the zip file at `[offset, offset + length)`; throws when the range is outside the file. */
export type ZipRangeReader = (offset: number, length: number) => Uint8Array;

/**
 * How many bytes at the end of a zip hold its end records: EOCD (22) + comment (≤ 65535) + ZIP64
 * locator (20) + the ZIP64 end record (56) that writers (torch.save included) put right before it.
 */
export const ZIP_TAIL_BYTES = 22 + 65535 + 20 + 56;

/**
 * Find the central directory from the file's last bytes `tail` (up to `ZIP_TAIL_BYTES`), reading the
 * ZIP64 end record through `read` when the end record points there.
 */
export function locateZipDirectory(tail: Uint8Array, fileSize: number, read: ZipRangeReader): ZipDirectoryLocation {
  const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  // End of central directory: 22 bytes + a comment of at most 65535 bytes, searched from the end.
  let eocd = -1;
  for (let i = tail.length - 22; i >= Math.max(0, tail.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === EOCD_SIGNATURE) { eocd = i; break; }
  }
  if (eocd < 0) throw new TorchCheckpointError(`zip: no end-of-central-directory record in ${fileSize} bytes (not a zip file, or truncated)`);
  let count = view.getUint16(eocd + 10, true);
  let size = view.getUint32(eocd + 12, true);
  let offset = view.getUint32(eocd + 16, true);
  if (count === 0xffff || size === 0xffffffff || offset === 0xffffffff) {
    // ZIP64: a 20-byte locator right before the EOCD points at the 56-byte ZIP64 EOCD record.
    const locator = eocd - 20;
    if (locator < 0 || view.getUint32(locator, true) !== ZIP64_EOCD_LOCATOR_SIGNATURE) {
      throw new TorchCheckpointError('zip: ZIP64 end-of-central-directory locator missing');
    }
    const at = u64(view, locator + 8, 'ZIP64 record offset');
    if (at + 56 > fileSize) throw new TorchCheckpointError(`zip: ZIP64 end-of-central-directory record at ${at} lies outside the ${fileSize}-byte file`);
    const record = read(at, 56);
    const rv = new DataView(record.buffer, record.byteOffset, record.byteLength);
    if (rv.getUint32(0, true) !== ZIP64_EOCD_SIGNATURE) throw new TorchCheckpointError(`zip: no ZIP64 end-of-central-directory record at ${at}`);
    count = u64(rv, 32, 'entry count');
    size = u64(rv, 40, 'central directory size');
    offset = u64(rv, 48, 'central directory offset');
  }
  if (offset + size > fileSize) {
    throw new TorchCheckpointError(`zip: central directory [${offset}, ${offset + size}) lies outside the ${fileSize}-byte file (truncated?)`);
  }
  return { count, offset, size };
}

/** Parse `location.count` central-directory records from `directory` (the directory's bytes). */
export function parseZipDirectory(directory: Uint8Array, location: ZipDirectoryLocation): Map<string, ZipEntry> {
  const view = new DataView(directory.buffer, directory.byteOffset, directory.byteLength);
  const { count, size } = location;
  const entries = new Map<string, ZipEntry>();
  const decoder = new TextDecoder('utf-8', { fatal: false });
  let p = 0;
  for (let n = 0; n < count; n++) {
    if (p + 46 > size || view.getUint32(p, true) !== CENTRAL_SIGNATURE) {
      throw new TorchCheckpointError(`zip: central directory entry ${n} of ${count} at offset ${location.offset + p} is malformed`);
    }
    const method = view.getUint16(p + 10, true);
    let compressedSize = view.getUint32(p + 20, true);
    let uncompressedSize = view.getUint32(p + 24, true);
    const nameLength = view.getUint16(p + 28, true);
    const extraLength = view.getUint16(p + 30, true);
    const commentLength = view.getUint16(p + 32, true);
    let localHeaderOffset = view.getUint32(p + 42, true);
    const end = p + 46 + nameLength + extraLength + commentLength;
    if (end > size) throw new TorchCheckpointError(`zip: central directory entry ${n} overruns the directory`);
    const name = decoder.decode(directory.subarray(p + 46, p + 46 + nameLength));
    // ZIP64 extended information (extra field id 1): 8-byte values, only for fields set to 0xffffffff, in this order.
    let e = p + 46 + nameLength;
    const extraEnd = e + extraLength;
    while (e + 4 <= extraEnd) {
      const id = view.getUint16(e, true);
      const fieldSize = view.getUint16(e + 2, true);
      if (id === 1) {
        let q = e + 4;
        const take = (what: string): number => {
          if (q + 8 > e + 4 + fieldSize) throw new TorchCheckpointError(`zip: ZIP64 extra field of ${JSON.stringify(name)} is too short for its ${what}`, name);
          const v = u64(view, q, what);
          q += 8;
          return v;
        };
        if (uncompressedSize === 0xffffffff) uncompressedSize = take('uncompressed size');
        if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take('local header offset');
      }
      e += 4 + fieldSize;
    }
    entries.set(name, { name, method, compressedSize, uncompressedSize, localHeaderOffset });
    p = end;
  }
  return entries;
}

/** `[offset, offset + length)` of `bytes`, or a `TorchCheckpointError` when outside. */
function rangeOf(bytes: Uint8Array): ZipRangeReader {
  return (offset, length) => {
    if (offset + length > bytes.length) throw new TorchCheckpointError(`zip: bytes [${offset}, ${offset + length}) lie outside the ${bytes.length}-byte file (truncated?)`);
    return bytes.subarray(offset, offset + length);
  };
}

/**
 * Parse the central directory of a complete zip file in `bytes`. Throws `TorchCheckpointError` for a
 * truncated file, a missing end-of-central-directory record or out-of-range offsets.
 */
export function readZipDirectory(bytes: Uint8Array): Map<string, ZipEntry> {
  const tailStart = Math.max(0, bytes.length - ZIP_TAIL_BYTES);
  const location = locateZipDirectory(bytes.subarray(tailStart), bytes.length, rangeOf(bytes));
  return parseZipDirectory(bytes.subarray(location.offset, location.offset + location.size), location);
}

/**
 * Where a STORED entry's data lies, from its 30-byte local header `local` (read at
 * `entry.localHeaderOffset`): `[start, start + entry.uncompressedSize)`. Refuses compressed entries.
 */
export function zipEntryDataOffset(entry: ZipEntry, local: Uint8Array, fileSize: number): number {
  const where = `zip entry ${JSON.stringify(entry.name)}`;
  if (entry.method !== 0) {
    const kind = entry.method === 8 ? 'DEFLATE-compressed' : `compressed with method ${entry.method}`;
    throw new TorchCheckpointError(`${where} is ${kind}; only STORED entries (as torch.save writes them) can be read`, entry.name);
  }
  if (entry.compressedSize !== entry.uncompressedSize) {
    throw new TorchCheckpointError(`${where}: STORED entry has compressed size ${entry.compressedSize} != size ${entry.uncompressedSize}`, entry.name);
  }
  const h = entry.localHeaderOffset;
  const view = new DataView(local.buffer, local.byteOffset, local.byteLength);
  if (local.length < 30 || view.getUint32(0, true) !== LOCAL_SIGNATURE) {
    throw new TorchCheckpointError(`${where}: local header at offset ${h} is missing or outside the ${fileSize}-byte file`, entry.name);
  }
  const start = h + 30 + view.getUint16(26, true) + view.getUint16(28, true);
  const end = start + entry.uncompressedSize;
  if (end > fileSize) {
    throw new TorchCheckpointError(`${where}: data [${start}, ${end}) lies outside the ${fileSize}-byte file (truncated?)`, entry.name);
  }
  return start;
}

/**
 * The bytes of one STORED entry, a view into `bytes` (no copy). Refuses compressed entries and entries
 * whose data lies outside the file.
 */
export function zipEntryBytes(bytes: Uint8Array, entry: ZipEntry): Uint8Array {
  const h = entry.localHeaderOffset;
  const local = bytes.subarray(Math.min(h, bytes.length), Math.min(h + 30, bytes.length));
  const start = zipEntryDataOffset(entry, local, bytes.length);
  return bytes.subarray(start, start + entry.uncompressedSize);
}
