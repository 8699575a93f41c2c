import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveSafetensors, SafetensorsError } from './safetensors.js';
import { readSafetensorsFileHeader } from './safetensors-node.js';
import { loadShardedCheckpoint, parseShardedIndex, saveShardedCheckpoint } from './sharded.js';
import { expectRejects } from './safetensors-errors.testutil.js';


let root: string;
let counter = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mllm-sharded-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const dir = join(root, `case-${counter++}`);
  await mkdir(dir);
  return dir;
}

function disposeAll(map: Map<string, tf.Tensor>): void {
  for (const t of map.values()) t.dispose();
}

/** Tensors with data sizes 40, 40, 100, 8 bytes. */
function model(): Map<string, tf.Tensor> {
  return new Map<string, tf.Tensor>([
    ['model.embed.weight', tf.range(0, 10).reshape([2, 5])],
    ['model.layers.0.weight', tf.range(10, 20).reshape([5, 2])],
    ['model.vision.weight', tf.range(0, 25).reshape([5, 5])],
    ['lm_head.ids', tf.tensor1d([1, 2], 'int32')],
  ]);
}

async function writeShard(dir: string, name: string, tensors: Array<[string, number[]]>): Promise<void> {
  const map = new Map(tensors.map(([n, v]) => [n, tf.tensor1d(v)] as [string, tf.Tensor]));
  await writeFile(join(dir, name), saveSafetensors(map));
  disposeAll(map);
}

async function writeIndex(dir: string, text: string): Promise<string> {
  const path = join(dir, 'model.safetensors.index.json');
  await writeFile(path, text);
  return path;
}

describe('sharded checkpoints', () => {
  it('saves greedy shards with the save_pretrained names and index, and loads them back', async () => {
    const dir = await freshDir();
    const tensors = model();
    const saved = await saveShardedCheckpoint(dir, tensors, { maxShardBytes: 64 });
    // 40 | 40 (40+40 > 64) | 100 (alone, larger than the limit) | 8 (100+8 > 64)
    expect(saved.shardFiles).toEqual([
      'model-00001-of-00004.safetensors',
      'model-00002-of-00004.safetensors',
      'model-00003-of-00004.safetensors',
      'model-00004-of-00004.safetensors',
    ]);
    expect(saved.totalSize).toBe(188);
    expect((await readdir(dir)).sort()).toEqual([...saved.shardFiles, 'model.safetensors.index.json'].sort());
    const index = JSON.parse(await readFile(saved.indexPath, 'utf8'));
    expect(index.metadata).toEqual({ total_size: 188 });
    expect(index.weight_map).toEqual({
      'lm_head.ids': 'model-00004-of-00004.safetensors',
      'model.embed.weight': 'model-00001-of-00004.safetensors',
      'model.layers.0.weight': 'model-00002-of-00004.safetensors',
      'model.vision.weight': 'model-00003-of-00004.safetensors',
    });
    const shardHeader = await readSafetensorsFileHeader(join(dir, saved.shardFiles[2]));
    expect(shardHeader.metadata!.format).toBe('pt');
    expect([...shardHeader.tensors.keys()]).toEqual(['model.vision.weight']);

    const before = tf.memory().numTensors;
    for (const path of [dir, saved.indexPath]) {
      const loaded = await loadShardedCheckpoint(path);
      expect(loaded.metadata).toEqual(Object.assign(Object.create(null), { total_size: 188 }));
      expect([...loaded.tensors.keys()].sort()).toEqual([...tensors.keys()].sort());
      for (const [name, t] of tensors) {
        expect([loaded.tensors.get(name)!.dtype, loaded.tensors.get(name)!.shape]).toEqual([t.dtype, t.shape]);
        expect(Array.from(loaded.tensors.get(name)!.dataSync())).toEqual(Array.from(t.dataSync()));
      }
      disposeAll(loaded.tensors);
      expect(tf.memory().numTensors).toBe(before);
    }
    disposeAll(tensors);
  });

  it('loads only tensors with a prefix when filtered', async () => {
    const dir = await freshDir();
    const tensors = model();
    await saveShardedCheckpoint(dir, tensors, { maxShardBytes: 64, floatDtype: 'F16' });
    const before = tf.memory().numTensors;
    const loaded = await loadShardedCheckpoint(dir, { filter: (n) => n.startsWith('model.vision.') });
    expect([...loaded.tensors.keys()]).toEqual(['model.vision.weight']);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(Array.from(loaded.tensors.get('model.vision.weight')!.dataSync())).toEqual(Array.from({ length: 25 }, (_, i) => i));
    disposeAll(loaded.tensors);
    disposeAll(tensors);
  });

  it('writes one shard plus an index when everything fits, and loads a plain model.safetensors directory', async () => {
    const dir = await freshDir();
    const tensors = model();
    const saved = await saveShardedCheckpoint(dir, tensors);
    expect(saved.shardFiles).toEqual(['model-00001-of-00001.safetensors']);
    const single = await freshDir();
    await writeFile(join(single, 'model.safetensors'), saveSafetensors(tensors));
    const loaded = await loadShardedCheckpoint(single);
    expect([...loaded.tensors.keys()].sort()).toEqual([...tensors.keys()].sort());
    expect(loaded.metadata).toBeNull();
    disposeAll(loaded.tensors);
    disposeAll(tensors);
  });

  it('rejects shard names that escape the directory', async () => {
    for (const evil of ['../evil.safetensors', 'sub/../../evil.safetensors', '/etc/passwd', '..\\evil.safetensors', 'C:/evil', '']) {
      const dir = await freshDir();
      const indexPath = await writeIndex(dir, JSON.stringify({ metadata: {}, weight_map: { w: evil } }));
      await expectRejects(loadShardedCheckpoint(indexPath), 'PATH_ESCAPE', /shard file/);
    }
    expect(() => parseShardedIndex('{"weight_map": {"w": "../x.safetensors"}}')).toThrow(SafetensorsError);
  });

  it('checks the index against the shards before reading any tensor', async () => {
    const before = tf.memory().numTensors;
    // Mapped tensor absent from its shard.
    let dir = await freshDir();
    await writeShard(dir, 'a.safetensors', [['x', [1]]]);
    await writeIndex(dir, JSON.stringify({ weight_map: { x: 'a.safetensors', y: 'a.safetensors' } }));
    await expectRejects(loadShardedCheckpoint(dir), 'MISSING_TENSOR', /"y".*"a.safetensors"/);
    // Same tensor stored in two shards.
    dir = await freshDir();
    await writeShard(dir, 'a.safetensors', [['x', [1]], ['y', [2]]]);
    await writeShard(dir, 'b.safetensors', [['y', [3]]]);
    await writeIndex(dir, JSON.stringify({ weight_map: { x: 'a.safetensors', y: 'b.safetensors' } }));
    await expectRejects(loadShardedCheckpoint(dir), 'DUPLICATE_TENSOR', /"y".*"a.safetensors".*"b.safetensors"/);
    // Tensor in a shard but not in the weight map.
    dir = await freshDir();
    await writeShard(dir, 'a.safetensors', [['x', [1]], ['stray', [2]]]);
    await writeIndex(dir, JSON.stringify({ weight_map: { x: 'a.safetensors' } }));
    await expectRejects(loadShardedCheckpoint(dir), 'UNMAPPED_TENSOR', /"stray"/);
    // Missing shard file.
    dir = await freshDir();
    await writeIndex(dir, JSON.stringify({ weight_map: { x: 'gone.safetensors' } }));
    await expectRejects(loadShardedCheckpoint(dir), 'IO_ERROR', /gone.safetensors/);
    // Malformed indexes.
    dir = await freshDir();
    await writeIndex(dir, '{"weight_map": {"x": "a.safetensors", "x": "b.safetensors"}}');
    await expectRejects(loadShardedCheckpoint(dir), 'DUPLICATE_KEY', /"x"/);
    await writeIndex(dir, '{"weight_map": ["a.safetensors"]}');
    await expectRejects(loadShardedCheckpoint(dir), 'INVALID_INDEX', /weight_map/);
    await writeIndex(dir, '{"weight_map": {"x": 3}}');
    await expectRejects(loadShardedCheckpoint(dir), 'INVALID_INDEX', /"x"/);
    await writeIndex(dir, '{"metadata": 3, "weight_map": {}}');
    await expectRejects(loadShardedCheckpoint(dir), 'INVALID_INDEX', /metadata/);
    await writeIndex(dir, '[]');
    await expectRejects(loadShardedCheckpoint(dir), 'HEADER_NOT_OBJECT');
    await writeIndex(dir, '{"weight_map": ');
    await expectRejects(loadShardedCheckpoint(dir), 'INVALID_JSON');
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a corrupt later shard disposes everything already loaded', async () => {
    const dir = await freshDir();
    await writeShard(dir, 'a.safetensors', [['x', [1, 2]]]);
    // b holds an I64 value outside int32: only detected when its data is read.
    const header = new TextEncoder().encode(JSON.stringify({ y: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }));
    const bytes = new Uint8Array(8 + header.length + 8);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, BigInt(header.length), true);
    bytes.set(header, 8);
    view.setBigInt64(8 + header.length, -(2n ** 40n), true);
    await writeFile(join(dir, 'b.safetensors'), bytes);
    await writeIndex(dir, JSON.stringify({ weight_map: { x: 'a.safetensors', y: 'b.safetensors' } }));
    const before = tf.memory().numTensors;
    await expectRejects(loadShardedCheckpoint(dir), 'VALUE_OUT_OF_RANGE', /"y"/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('keeps __proto__ tensor names and index metadata keys inert', async () => {
    const dir = await freshDir();
    await writeShard(dir, 'a.safetensors', [['__proto__', [5]], ['constructor', [6]]]);
    await writeIndex(dir, '{"metadata": {"__proto__": {"polluted": 1}}, "weight_map": {"__proto__": "a.safetensors", "constructor": "a.safetensors"}}');
    const loaded = await loadShardedCheckpoint(dir);
    expect([...loaded.tensors.keys()].sort()).toEqual(['__proto__', 'constructor']);
    expect(loaded.tensors.get('__proto__')!.dataSync()[0]).toBe(5);
    expect(Object.getPrototypeOf(loaded.metadata)).toBeNull();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    disposeAll(loaded.tensors);
  });

  it('validates save arguments before writing anything', async () => {
    const dir = join(root, 'never-created');
    const c = tf.tensor(['text'], [1], 'string');
    await expectRejects(saveShardedCheckpoint(dir, new Map([['c', c]])), 'UNSUPPORTED_DTYPE');
    const t = tf.tensor1d([1]);
    await expectRejects(saveShardedCheckpoint(dir, new Map([['t', t]]), { maxShardBytes: 0 }), 'INVALID_ARGUMENT');
    await expectRejects(saveShardedCheckpoint(dir, new Map([['t', t]]), { filePrefix: '../up' }), 'PATH_ESCAPE');
    await expect(readdir(dir)).rejects.toThrow();
    c.dispose();
    t.dispose();
  });
});
