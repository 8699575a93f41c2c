import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, readdir, readFile, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSafetensors, saveSafetensors } from './safetensors.js';
import { readSafetensorsFile, readSafetensorsFileHeader, writeSafetensorsFile, writeFileAtomically } from './safetensors-node.js';
import { expectRejects } from './safetensors-errors.testutil.js';


let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mllm-safetensors-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function sample(): Map<string, tf.Tensor> {
  return new Map<string, tf.Tensor>([
    ['encoder.weight', tf.tensor2d([[1, 2, 3], [4, 5, 6]])],
    ['encoder.bias', tf.tensor1d([0.5, -0.5])],
    ['decoder.ids', tf.tensor1d([7, 8, 9], 'int32')],
    ['decoder.mask', tf.tensor1d([true, false, true], 'bool')],
  ]);
}

function disposeAll(map: Map<string, tf.Tensor>): void {
  for (const t of map.values()) t.dispose();
}

describe('safetensors files (node)', () => {
  it('writes the same bytes as saveSafetensors and reads them back', async () => {
    const tensors = sample();
    const path = join(root, 'roundtrip.safetensors');
    const size = await writeSafetensorsFile(path, tensors, { format: 'pt' });
    const onDisk = new Uint8Array(await readFile(path));
    expect(size).toBe(onDisk.length);
    expect(Buffer.from(onDisk).equals(Buffer.from(saveSafetensors(tensors, { format: 'pt' })))).toBe(true);
    const before = tf.memory().numTensors;
    const { tensors: loaded, metadata } = await readSafetensorsFile(path);
    expect(metadata!.format).toBe('pt');
    for (const [name, t] of tensors) {
      expect([loaded.get(name)!.dtype, loaded.get(name)!.shape]).toEqual([t.dtype, t.shape]);
      expect(Array.from(loaded.get(name)!.dataSync())).toEqual(Array.from(t.dataSync()));
    }
    disposeAll(loaded);
    expect(tf.memory().numTensors).toBe(before);
    disposeAll(tensors);
  });

  it('reads only the tensors passing the filter, and headers alone', async () => {
    const tensors = sample();
    const path = join(root, 'filtered.safetensors');
    await writeSafetensorsFile(path, tensors, null, { floatDtype: 'BF16' });
    const header = await readSafetensorsFileHeader(path);
    expect([...header.tensors.keys()].sort()).toEqual([...tensors.keys()].sort());
    expect(header.tensors.get('encoder.weight')!.dtype).toBe('BF16');
    const before = tf.memory().numTensors;
    const { tensors: loaded } = await readSafetensorsFile(path, { filter: (n) => n.startsWith('encoder.') });
    expect([...loaded.keys()].sort()).toEqual(['encoder.bias', 'encoder.weight']);
    expect(tf.memory().numTensors).toBe(before + 2);
    expect(Array.from(loaded.get('encoder.weight')!.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    disposeAll(loaded);
    disposeAll(tensors);
  });

  it('BF16 and F16 tensors read straight into float32 storage equal the in-memory decoder, leak nothing', async () => {
    const values = tf.tensor2d([[1, -2.5, 3.140625, 65504], [1e-3, -0, 7e-8, -1e30]]);
    for (const floatDtype of ['BF16', 'F16'] as const) {
      const path = join(root, `half-${floatDtype}.safetensors`);
      const tensors = new Map<string, tf.Tensor>([['w', values], ['odd', tf.tensor1d([0.1, 0.2, 0.3])], ['ids', tf.tensor1d([1, 2], 'int32')]]);
      await writeSafetensorsFile(path, tensors, null, { floatDtype });
      const before = tf.memory().numTensors;
      const fromFile = await readSafetensorsFile(path);
      const inMemory = loadSafetensors(await readFile(path)); // decodes a whole read buffer (decodeSafetensorsTensor)
      for (const name of ['w', 'odd', 'ids']) {
        expect(fromFile.tensors.get(name)!.dtype).toBe(inMemory.tensors.get(name)!.dtype);
        expect(fromFile.tensors.get(name)!.shape).toEqual(inMemory.tensors.get(name)!.shape);
        expect(Array.from(fromFile.tensors.get(name)!.dataSync()), `${floatDtype} ${name}`).toEqual(Array.from(inMemory.tensors.get(name)!.dataSync()));
      }
      disposeAll(fromFile.tensors);
      disposeAll(inMemory.tensors);
      expect(tf.memory().numTensors).toBe(before);
      tensors.get('odd')!.dispose();
      tensors.get('ids')!.dispose();
    }
    values.dispose();
  });

  it('rejects malformed and missing files with codes and leaks nothing', async () => {
    const before = tf.memory().numTensors;
    const short = join(root, 'short.safetensors');
    await writeFile(short, Uint8Array.from([1, 2, 3]));
    await expectRejects(readSafetensorsFile(short), 'TRUNCATED');
    // A valid file cut short: the header now promises more data than the file holds.
    const tensors = sample();
    const full = saveSafetensors(tensors);
    disposeAll(tensors);
    const cut = join(root, 'cut.safetensors');
    await writeFile(cut, full.subarray(0, full.length - 3));
    await expectRejects(readSafetensorsFile(cut), 'OFFSET_OUT_OF_RANGE');
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
    const hugePath = join(root, 'huge.safetensors');
    await writeFile(hugePath, huge);
    await expectRejects(readSafetensorsFile(hugePath), 'HEADER_TOO_LARGE');
    await expectRejects(readSafetensorsFile(join(root, 'does-not-exist.safetensors')), 'IO_ERROR', /does-not-exist/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('an out-of-range value in a late tensor disposes the tensors already read', async () => {
    const header = JSON.stringify({
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      b: { dtype: 'I64', shape: [1], data_offsets: [4, 12] },
    });
    const json = new TextEncoder().encode(header);
    const bytes = new Uint8Array(8 + json.length + 12);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, BigInt(json.length), true);
    bytes.set(json, 8);
    view.setFloat32(8 + json.length, 1.5, true);
    view.setBigInt64(8 + json.length + 4, 2n ** 33n, true);
    const path = join(root, 'late-error.safetensors');
    await writeFile(path, bytes);
    const before = tf.memory().numTensors;
    const error = await expectRejects(readSafetensorsFile(path), 'VALUE_OUT_OF_RANGE', /"b".*8589934592/);
    expect(error.tensorName).toBe('b');
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('atomic writes', () => {
  it('a tensor that fails during serialisation leaves the previous file byte-identical and no temp file', async () => {
    const dir = join(root, 'atomic-1');
    await mkdir(dir);
    const path = join(dir, 'model.safetensors');
    const first = sample();
    await writeSafetensorsFile(path, first);
    const previous = await readFile(path);
    const good = tf.tensor1d([1, 2]);
    const gone = tf.tensor1d([3, 4]);
    gone.dispose();
    // 'a.good' is written first (same dtype, name order), then reading 'b.gone' throws mid-write.
    await expectRejects(writeSafetensorsFile(path, new Map([['a.good', good], ['b.gone', gone]])), 'INVALID_ARGUMENT', /"b.gone"/);
    expect((await readFile(path)).equals(previous)).toBe(true);
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    good.dispose();
    disposeAll(first);
  });

  it('a failing rename leaves the target intact and removes the temp file', async () => {
    const dir = join(root, 'atomic-2');
    await mkdir(dir);
    // The target is a non-empty directory: rename(file, dir) fails (EISDIR/ENOTEMPTY).
    const target = join(dir, 'occupied');
    await mkdir(target);
    await writeFile(join(target, 'keep.txt'), 'keep');
    const t = tf.tensor1d([1]);
    await expectRejects(writeSafetensorsFile(target, new Map([['t', t]])), 'IO_ERROR', /occupied/);
    expect(await readdir(dir)).toEqual(['occupied']);
    expect(await readFile(join(target, 'keep.txt'), 'utf8')).toBe('keep');
    t.dispose();
  });

  it('a failing writer callback leaves no file; a missing directory is an IO_ERROR', async () => {
    const dir = join(root, 'atomic-3');
    await mkdir(dir);
    await expect(
      writeFileAtomically(join(dir, 'x.bin'), async (handle) => {
        await handle.write(Uint8Array.from([1, 2, 3]));
        throw new Error('disk full (simulated)');
      }),
    ).rejects.toThrow(/disk full/);
    expect(await readdir(dir)).toEqual([]);
    const t = tf.tensor1d([1]);
    await expectRejects(writeSafetensorsFile(join(root, 'no', 'such', 'dir.safetensors'), new Map([['t', t]])), 'IO_ERROR');
    t.dispose();
  });
});
