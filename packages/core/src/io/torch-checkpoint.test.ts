import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expectNoLeaks } from '../testing/index.js';
import { Linear } from '../nn/linear.js';
import { loadSafetensors } from './safetensors.js';
import { loadStateDict, stateDict } from './state-dict.js';
import { loadTorchCheckpoint, loadTorchCheckpointFile, readTorchCheckpoint } from './torch-checkpoint.js';
import { readZipDirectory, TorchCheckpointError, zipEntryBytes } from './zip.js';

// Fixtures written by scripts/reference-fixtures/torch_pth.py with torch.save (PyTorch 1.13); the
// expected values are what torch.load reads back, as float32 / int64 / bool safetensors.
const fixture = (name: string): string => fileURLToPath(new URL(`./__fixtures__/${name}`, import.meta.url));
const read = (name: string): Uint8Array => new Uint8Array(readFileSync(fixture(name)));

function expected(file: string): Map<string, tf.Tensor> {
  const all = loadSafetensors(read('expected.safetensors')).tensors;
  const out = new Map<string, tf.Tensor>();
  for (const [name, t] of all) {
    if (name.startsWith(`${file}/`)) out.set(name.slice(file.length + 1), t);
    else t.dispose();
  }
  return out;
}

/** Bitwise comparison: same names, shapes, dtypes and exactly equal values. */
function expectSame(actual: Map<string, tf.Tensor>, want: Map<string, tf.Tensor>): void {
  expect([...actual.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [name, t] of want) {
    const got = actual.get(name)!;
    expect(got.shape, name).toEqual(t.shape);
    expect(got.dtype, name).toBe(t.dtype);
    expect(Array.from(got.dataSync()), name).toEqual(Array.from(t.dataSync()));
  }
}

function dispose(...maps: Array<Map<string, tf.Tensor>>): void {
  for (const m of maps) for (const t of m.values()) t.dispose();
}

function catchError(fn: () => unknown): TorchCheckpointError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(TorchCheckpointError);
  return caught as TorchCheckpointError;
}

interface Entry { name: string; data: Uint8Array; method?: number }

/** A zip of STORED entries (method overridable), optionally with ZIP64 records for every size and offset. */
function buildZip(entries: Entry[], zip64 = false): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = enc.encode(entry.name);
    const local = new DataView(new ArrayBuffer(30 + name.length));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(8, entry.method ?? 0, true);
    local.setUint32(18, entry.data.length, true);
    local.setUint32(22, entry.data.length, true);
    local.setUint16(26, name.length, true);
    new Uint8Array(local.buffer).set(name, 30);
    const cd = new DataView(new ArrayBuffer(46 + name.length + (zip64 ? 28 : 0)));
    cd.setUint32(0, 0x02014b50, true);
    cd.setUint16(10, entry.method ?? 0, true);
    cd.setUint32(20, zip64 ? 0xffffffff : entry.data.length, true);
    cd.setUint32(24, zip64 ? 0xffffffff : entry.data.length, true);
    cd.setUint16(28, name.length, true);
    cd.setUint16(30, zip64 ? 28 : 0, true);
    cd.setUint32(42, zip64 ? 0xffffffff : offset, true);
    new Uint8Array(cd.buffer).set(name, 46);
    if (zip64) {
      const e = 46 + name.length;
      cd.setUint16(e, 1, true);
      cd.setUint16(e + 2, 24, true);
      cd.setBigUint64(e + 4, BigInt(entry.data.length), true); // uncompressed
      cd.setBigUint64(e + 12, BigInt(entry.data.length), true); // compressed
      cd.setBigUint64(e + 20, BigInt(offset), true); // local header offset
    }
    parts.push(new Uint8Array(local.buffer), entry.data);
    central.push(new Uint8Array(cd.buffer));
    offset += 30 + name.length + entry.data.length;
  }
  const dirSize = central.reduce((a, c) => a + c.length, 0);
  const tail: Uint8Array[] = [];
  if (zip64) {
    const record = new DataView(new ArrayBuffer(56));
    record.setUint32(0, 0x06064b50, true);
    record.setBigUint64(32, BigInt(entries.length), true);
    record.setBigUint64(40, BigInt(dirSize), true);
    record.setBigUint64(48, BigInt(offset), true);
    const locator = new DataView(new ArrayBuffer(20));
    locator.setUint32(0, 0x07064b50, true);
    locator.setBigUint64(8, BigInt(offset + dirSize), true);
    tail.push(new Uint8Array(record.buffer), new Uint8Array(locator.buffer));
  }
  const eocd = new DataView(new ArrayBuffer(22));
  eocd.setUint32(0, 0x06054b50, true);
  eocd.setUint16(10, zip64 ? 0xffff : entries.length, true);
  eocd.setUint32(12, zip64 ? 0xffffffff : dirSize, true);
  eocd.setUint32(16, zip64 ? 0xffffffff : offset, true);
  tail.push(new Uint8Array(eocd.buffer));
  const all = [...parts, ...central, ...tail];
  const out = new Uint8Array(all.reduce((a, c) => a + c.length, 0));
  let p = 0;
  for (const c of all) { out.set(c, p); p += c.length; }
  return out;
}

/** The fixture's entries, for rebuilding it with one change. */
function entriesOf(bytes: Uint8Array): Entry[] {
  return [...readZipDirectory(bytes).values()].map((e) => ({ name: e.name, data: zipEntryBytes(bytes, e) }));
}

// Hand-assembled protocol-2 pickles, opcode by opcode.
const enc = new TextEncoder();
function unicode(s: string): number[] {
  const b = enc.encode(s);
  return [0x58, b.length & 0xff, (b.length >> 8) & 0xff, 0, 0, ...b]; // BINUNICODE
}
const global = (module: string, name: string): number[] => [0x63, ...enc.encode(`${module}\n${name}\n`)];
const int = (v: number): number[] => [0x4a, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff]; // BININT
const ints = (vs: number[]): number[] => [0x28, ...vs.flatMap(int), 0x74]; // MARK … TUPLE

/** `{"w": _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', numel), offset, shape, stride, False, OrderedDict())}` */
function tensorPickle(numel: number, offset: number, shape: number[], stride: number[]): Uint8Array {
  return Uint8Array.from([
    0x80, 0x02, 0x7d, 0x28, ...unicode('w'), ...global('torch._utils', '_rebuild_tensor_v2'),
    0x28, 0x28, ...unicode('storage'), ...global('torch', 'FloatStorage'), ...unicode('0'), ...unicode('cpu'), ...int(numel), 0x74, 0x51,
    ...int(offset), ...ints(shape), ...ints(stride), 0x89, ...global('collections', 'OrderedDict'), 0x29, 0x52, 0x74, 0x52,
    0x75, 0x2e,
  ]);
}

function withPickle(pickle: Uint8Array, storage = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer)): Uint8Array {
  return buildZip([
    { name: 'archive/data.pkl', data: pickle },
    { name: 'archive/data/0', data: storage },
    { name: 'archive/version', data: enc.encode('3\n') },
  ]);
}

describe('loadTorchCheckpoint: torch.save fixtures, compared bitwise with torch.load', () => {
  it('reads F32/F16/BF16/F64/I64/BOOL, a 0-d tensor, a transpose, a storage offset and shared storages', () => {
    const want = expected('tensors.pth');
    const got = loadTorchCheckpoint(read('tensors.pth'));
    expectSame(got, want);
    expect(got.get('i64')!.dtype).toBe('int32');
    expect(got.get('transposed')!.shape).toEqual([4, 3]);
    // Tied views of one storage become independent tensors.
    got.get('tied_a')!.dispose();
    expect(Array.from(got.get('tied_b')!.dataSync())).toEqual(Array.from(want.get('tied_b')!.dataSync()));
    dispose(got, want);
  });

  it('the pickle describes strides, offsets and shared storages as torch wrote them', () => {
    const { tensors, archive } = readTorchCheckpoint(read('tensors.pth'));
    expect(archive).toBe('tensors');
    expect(tensors.get('transposed')).toMatchObject({ shape: [4, 3], stride: [1, 4], offset: 0 });
    expect(tensors.get('offset')).toMatchObject({ shape: [2, 2], stride: [2, 1], offset: 5 });
    expect(tensors.get('offset')!.storage).toBe(tensors.get('base')!.storage);
    expect(tensors.get('tied_a')!.storage).toBe(tensors.get('tied_b')!.storage);
    expect(tensors.get('bf16')!.storage.dtype).toBe('BF16');
  });

  it('flattens nested dicts with dots, or picks a sub-dict with select (BLIP-2 {"model": ...})', () => {
    const want = expected('nested.pth');
    const flat = loadTorchCheckpoint(read('nested.pth'));
    expectSame(flat, want);
    const picked = loadTorchCheckpoint(read('nested.pth'), { select: 'model' });
    expect([...picked.keys()].sort()).toEqual(['encoder.bias', 'encoder.weight']);
    expect(Array.from(picked.get('encoder.bias')!.dataSync())).toEqual(Array.from(want.get('model.encoder.bias')!.dataSync()));
    const error = catchError(() => loadTorchCheckpoint(read('nested.pth'), { select: 'state_dict' }));
    expect(error.message).toMatch(/select "state_dict": no key "state_dict"; keys: "model", "epoch"/);
    dispose(flat, picked, want);
  });

  it('reads a Module.state_dict() with an int64 buffer and its _metadata, through loadTorchCheckpointFile', async () => {
    const want = expected('module.pth');
    const got = await loadTorchCheckpointFile(fixture('module.pth'));
    expectSame(got, want);
    expect(got.get('position_ids')!.dtype).toBe('int32');
    const filtered = await loadTorchCheckpointFile(fixture('module.pth'), { filter: (name) => name.startsWith('proj.') });
    expect([...filtered.keys()].sort()).toEqual(['proj.bias', 'proj.weight']);
    dispose(got, filtered, want);
    await expect(loadTorchCheckpointFile(fixture('missing.pth'))).rejects.toThrow(/could not read ".*missing\.pth"/);
  });

  it('feeds loadStateDict: a Linear takes the module checkpoint\'s proj.* weights', async () => {
    const tensors = await loadTorchCheckpointFile(fixture('module.pth'), { filter: (name) => name.startsWith('proj.') });
    const linear = new Linear({ inFeatures: 3, outFeatures: 2 });
    loadStateDict(linear, tensors, { prefix: 'proj.', strict: true });
    const want = expected('module.pth');
    const loaded = stateDict(linear);
    expect(Array.from(loaded.get('weight')!.dataSync())).toEqual(Array.from(want.get('proj.weight')!.dataSync()));
    expect(Array.from(loaded.get('bias')!.dataSync())).toEqual(Array.from(want.get('proj.bias')!.dataSync()));
    dispose(tensors, want);
    linear.dispose();
  });

  it('reads the same archive with ZIP64 central-directory records', () => {
    const rebuilt = buildZip(entriesOf(read('module.pth')), true);
    const want = expected('module.pth');
    const got = loadTorchCheckpoint(rebuilt);
    expectSame(got, want);
    dispose(got, want);
  });
});

describe('loadTorchCheckpoint refuses what weights_only refuses', () => {
  it('a GLOBAL os.system REDUCE, before calling anything', () => {
    const error = catchError(() => loadTorchCheckpoint(read('evil-os-system.pth'), {}, 'evil-os-system.pth'));
    expect(error.message).toBe(
      "refusing to load global 'os.system' from evil-os-system.pth: archive/data.pkl: only tensors, storages and ordered dicts are allowed",
    );
    expect(error.entry).toBe('archive/data.pkl');
  });

  it('a protocol-4 STACK_GLOBAL builtins.eval', () => {
    expect(() => loadTorchCheckpoint(read('evil-eval.pth'))).toThrow(/refusing to load global 'builtins\.eval' from checkpoint: archive\/data\.pkl/);
  });

  it('INST, OBJ, EXT and BUILD on unknown objects; storages called as functions', () => {
    const cases: Array<[number[], RegExp]> = [
      [[0x80, 0x02, 0x69, ...enc.encode('os\nsystem\n'), 0x2e], /opcode INST is not allowed/],
      [[0x80, 0x02, 0x28, 0x6f, 0x2e], /opcode OBJ is not allowed/],
      [[0x80, 0x02, 0x82, 0x01, 0x2e], /opcode EXT1 is not allowed/],
      [[0x80, 0x02, 0x7d, 0x7d, 0x62, 0x2e], /BUILD on an object of an unknown type is not allowed/],
      [[0x80, 0x02, ...global('torch', 'FloatStorage'), 0x29, 0x52, 0x2e], /torch\.FloatStorage may only appear in a storage persistent id/],
      [[0x80, 0x02, ...global('torch', 'Tensor'), 0x2e], /refusing to load global 'torch\.Tensor'/],
    ];
    for (const [pickle, message] of cases) {
      const error = catchError(() => loadTorchCheckpoint(withPickle(Uint8Array.from(pickle))));
      expect(error.message).toMatch(message);
      expect(error.message).toMatch(/archive\/data\.pkl/);
    }
  });
});

describe('loadTorchCheckpoint: malformed files give clear errors and leak nothing', () => {
  it('hand-built pickle reads a strided view correctly (sanity check of the builder)', () => {
    // storage [1..6], offset 1, shape [2, 2], stride [1, 2] → [[2, 4], [3, 5]]
    const got = loadTorchCheckpoint(withPickle(tensorPickle(6, 1, [2, 2], [1, 2])));
    expect(got.get('w')!.arraySync()).toEqual([[2, 4], [3, 5]]);
    dispose(got);
  });

  it('every truncation of a real checkpoint', () => {
    const bytes = read('tensors.pth');
    expectNoLeaks(() => {
      for (let n = 0; n < bytes.length; n += 97) {
        expect(() => loadTorchCheckpoint(bytes.subarray(0, n))).toThrow(TorchCheckpointError);
      }
    });
  });

  it('a view reaching past its storage, a storage entry shorter than numel, a missing storage', () => {
    expectNoLeaks(() => {
      let error = catchError(() => loadTorchCheckpoint(withPickle(tensorPickle(6, 3, [2, 2], [2, 1]))));
      expect(error.message).toMatch(/tensor "w" \(entry archive\/data\/0\): view \(offset 3, shape \[2, 2\], stride \[2, 1\]\) reaches element 6 of a 6-element storage/);
      error = catchError(() => loadTorchCheckpoint(withPickle(tensorPickle(8, 0, [8], [1]))));
      expect(error.message).toMatch(/storage has 24 bytes, its 8 F32 elements need 32/);
      expect(error.entry).toBe('archive/data/0');
      error = catchError(() => loadTorchCheckpoint(withPickle(tensorPickle(6, 0, [65536, 65536], [0, 0]))));
      expect(error.message).toMatch(/shape \[65536, 65536\] has too many elements \(4294967296\)/);
      error = catchError(() => loadTorchCheckpoint(buildZip([{ name: 'archive/data.pkl', data: tensorPickle(6, 0, [6], [1]) }])));
      expect(error.message).toMatch(/storage entry is missing/);
    });
  });

  it('a bad tensor in a later entry leaves no earlier tensor behind', () => {
    const entries = entriesOf(read('tensors.pth')).map((e) => (e.name === 'tensors/data/8' ? { ...e, data: e.data.subarray(0, 4) } : e));
    expectNoLeaks(() => {
      const error = catchError(() => loadTorchCheckpoint(buildZip(entries)));
      expect(error.message).toMatch(/entry tensors\/data\/8\): storage has 4 bytes/);
    });
  });

  it('stack underflow, unknown opcodes, bad memo keys, a missing STOP', () => {
    const cases: Array<[number[], RegExp]> = [
      [[0x80, 0x02, 0x2e], /stack underflow/],
      [[0x80, 0x02, 0x28, 0x30, 0x2e], /stack underflow/],
      [[0x80, 0x02, 0xff, 0x2e], /unknown or unsupported pickle opcode \(opcode 0xff at byte 2\)/],
      [[0x80, 0x02, 0x68, 0x07, 0x2e], /memo key 7 was never stored/],
      [[0x80, 0x02, 0x4e], /no STOP opcode/],
      [[0x80, 0x02, 0x58, 0xff, 0, 0, 0, 0x61], /truncated pickle/],
      [[0x80, 0x06, 0x4e, 0x2e], /pickle protocol 6 is not supported/],
      [[0x80, 0x02, 0x7d, 0x71, 0x00, ...unicode('self'), 0x68, 0x00, 0x73, 0x2e], /the dict at "self" contains itself/],
    ];
    for (const [pickle, message] of cases) {
      expect(() => loadTorchCheckpoint(withPickle(Uint8Array.from(pickle)))).toThrow(message);
    }
  });

  it('DEFLATE entries, a foreign zip, big-endian archives and non-zip bytes', () => {
    const deflated = buildZip([{ name: 'archive/data.pkl', data: tensorPickle(6, 0, [6], [1]), method: 8 }]);
    expect(() => loadTorchCheckpoint(deflated)).toThrow(/zip entry "archive\/data\.pkl" is DEFLATE-compressed; only STORED entries/);
    expect(() => loadTorchCheckpoint(buildZip([{ name: 'a.txt', data: enc.encode('hi') }]))).toThrow(/expected exactly one <archive>\/data\.pkl entry, found 0/);
    const bigEndian = buildZip([...entriesOf(read('module.pth')), { name: 'module/byteorder', data: enc.encode('big') }]);
    expect(() => loadTorchCheckpoint(bigEndian)).toThrow(/module\/byteorder is "big"; only little-endian/);
    expect(() => loadTorchCheckpoint(Uint8Array.from([0x80, 0x02, 0x8a, 0x0a]))).toThrow(/legacy pre-1\.6 torch\.save format/);
  });
});

describe('loadTorchCheckpointFile reads from disk with the same checks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mllm-pth-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, bytes: Uint8Array): string => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };

  it('ZIP64 archives, and only the selected storages are read (a missing unselected one is fine)', async () => {
    const want = expected('module.pth');
    const zip64 = await loadTorchCheckpointFile(write('zip64.pth', buildZip(entriesOf(read('module.pth')), true)));
    expectSame(zip64, want);
    const { tensors } = readTorchCheckpoint(read('module.pth'));
    const bufferKey = tensors.get('position_ids')!.storage.key;
    const withoutBuffer = buildZip(entriesOf(read('module.pth')).filter((e) => e.name !== `module/data/${bufferKey}`));
    const path = write('no-buffer.pth', withoutBuffer);
    const proj = await loadTorchCheckpointFile(path, { filter: (name) => name.startsWith('proj.') });
    expect([...proj.keys()].sort()).toEqual(['proj.bias', 'proj.weight']);
    await expect(loadTorchCheckpointFile(path)).rejects.toThrow(/tensor "position_ids" \(entry module\/data\/\d+\): storage entry is missing/);
    expect(() => loadTorchCheckpoint(withoutBuffer, { filter: (name) => name.startsWith('proj.') })).not.toThrow();
    dispose(zip64, proj, want);
  });

  it('refuses globals, truncations and non-zip files, leaking nothing', async () => {
    const before = tf.memory().numTensors;
    await expect(loadTorchCheckpointFile(fixture('evil-os-system.pth'))).rejects.toThrow(/refusing to load global 'os\.system' from .*evil-os-system\.pth: archive\/data\.pkl/);
    const bytes = read('tensors.pth');
    for (const n of [0, 10, 600, 1500, bytes.length - 30, bytes.length - 1]) {
      await expect(loadTorchCheckpointFile(write(`cut-${n}.pth`, bytes.subarray(0, n)))).rejects.toThrow(TorchCheckpointError);
    }
    await expect(loadTorchCheckpointFile(write('legacy.pth', Uint8Array.from([0x80, 0x02, 0x8a, 0x0a])))).rejects.toThrow(/legacy pre-1\.6/);
    expect(tf.memory().numTensors).toBe(before);
  });
});
