/** Saved host directories: the module packages their config.json records are imported before loading. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fsPromises from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { afterAll, beforeAll, describe, expect, it, vi, type MockInstance } from 'vitest';
import { importRecordedModulePackages, loadEvalModel } from './eval-model.js';

const directory = mkdtempSync(join(tmpdir(), 'mllm-eval-model-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

function savedHost(name: string, config: unknown): string {
  const dir = join(directory, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return dir;
}

const record = (type: string, pkg: unknown) => ({ module_type: type, module_package: pkg, module_version: '0.1.0', config: {} });

describe('importRecordedModulePackages', () => {
  it('imports the projector package, then each recorded module package once, in record order; nothing else', async () => {
    const dir = savedHost('recorded', {
      format: 'mllm-host-v1',
      projector: { ...record('qformer_vpg', '@mllm/vpgc'), child_name: 'mm_projector' },
      mllm_modules: [record('parrot', '@mllm/parrot'), record('wings', '@mllm/wings'), record('vpgc', '@mllm/vpgc'), record('evil', 'node:child_process'), record('odd', 42)],
    });
    const imported: string[] = [];
    const result = await importRecordedModulePackages(dir, async (name) => void imported.push(name));
    expect(imported).toEqual(['@mllm/vpgc', '@mllm/parrot', '@mllm/wings']);
    expect(result).toEqual(imported);
  });

  it('imports nothing for a directory without modules, without config.json, or with an unreadable one', async () => {
    const imported: string[] = [];
    const importer = async (name: string) => void imported.push(name);
    expect(await importRecordedModulePackages(savedHost('plain', { format: 'mllm-host-v1' }), importer)).toEqual([]);
    expect(await importRecordedModulePackages(savedHost('broken', '{ not json'), importer)).toEqual([]);
    expect(await importRecordedModulePackages(join(directory, 'absent'), importer)).toEqual([]);
    expect(imported).toEqual([]);
  });

  it('names the npm install to run when a recorded package is not installed, and passes other import errors on', async () => {
    const dir = savedHost('missing', { format: 'mllm-host-v1', mllm_modules: [record('toy', '@mllm/toy-module-not-installed')] });
    // The real importer: the package does not exist anywhere.
    await expect(importRecordedModulePackages(dir)).rejects.toThrow(
      `cannot load model ${JSON.stringify(dir)}: its config.json records a 'toy' module from @mllm/toy-module-not-installed, which is not installed. ` +
        'Install it beside @mllm/eval (npm install @mllm/toy-module-not-installed) and run again.',
    );
    const failing = async () => {
      throw new Error('top-level await exploded');
    };
    await expect(importRecordedModulePackages(dir, failing)).rejects.toThrow(
      `cannot load model ${JSON.stringify(dir)}: importing @mllm/toy-module-not-installed (recorded in its config.json for a 'toy' module) failed: top-level await exploded`,
    );
  });

  it('runs in loadEvalModel before the host loader, which is not reached when a package is missing', async () => {
    const dir = savedHost('order', { format: 'mllm-host-v1', mllm_modules: [record('parrot', '@mllm/parrot')] });
    const events: string[] = [];
    const host = { generate: () => ({ texts: ['A'] }) };
    const hostLoader = async () => (spec: string) => (events.push(`load ${spec}`), host);
    const model = await loadEvalModel(dir, hostLoader, {}, async (name) => void events.push(`import ${name}`));
    expect(events).toEqual(['import @mllm/parrot', `load ${dir}`]);
    expect(model.name).toBe('order');


    events.length = 0;
    const missing = savedHost('order-missing', { format: 'mllm-host-v1', mllm_modules: [record('toy', '@mllm/toy-module-not-installed')] });
    await expect(loadEvalModel(missing, hostLoader)).rejects.toThrow(/npm install @mllm\/toy-module-not-installed/);
    expect(events).toEqual([]);
  });
});

describe('loadEvalModel reads a model directory\'s config.json once', () => {
  // A spy on the file reader (the real one underneath): syncBuiltinESMExports makes the modules' named
  // `readFile` imports of node:fs/promises see it, whichever test file loaded eval-model.ts first.
  let spy: MockInstance<typeof fsPromises.readFile>;
  beforeAll(() => {
    spy = vi.spyOn(fsPromises, 'readFile');
    syncBuiltinESMExports();
  });
  afterAll(() => {
    spy.mockRestore();
    syncBuiltinESMExports();
  });
  /** How many times `readFile` read `<dir>/config.json` since the spy was last cleared. */
  const configReads = (dir: string) => spy.mock.calls.filter(([path]) => path === join(dir, 'config.json')).length;

  it('a saved host (layout check, then the recorded module packages) and an authors\' checkpoint (layout check, then fromPretrained)', async () => {
    const host = savedHost('read-once-host', { format: 'mllm-host-v1', mllm_modules: [record('parrot', '@mllm/parrot')] });
    const imported: string[] = [];
    spy.mockClear();
    await loadEvalModel(host, async () => () => ({ generate: () => ({ texts: ['A'] }) }), {}, async (name) => void imported.push(name));
    expect(imported).toEqual(['@mllm/parrot']); // the packages came from that one read
    expect(configReads(host)).toBe(1);

    const authors = savedHost('read-once-llava', { model_type: 'llava_qwen2', mm_vision_tower: '/authors/clip' });
    const loads: string[] = [];
    spy.mockClear();
    const loader = async () => async (dir: string) => (loads.push(dir), { kind: 'llava', chat: async () => ({ text: 'A' }), dispose: () => {} });
    await loadEvalModel(authors, async () => undefined, {}, undefined, { loader });
    expect([loads, configReads(authors)]).toEqual([[authors], 1]);

    // A directory whose config.json is not JSON: read once, nothing imported, the host loader reports it.
    const broken = savedHost('read-once-broken', '{ not json');
    spy.mockClear();
    await expect(loadEvalModel(broken, async () => () => {
      throw new Error('loadHostModel: config.json is not valid JSON');
    }, {}, async (name) => void imported.push(name))).rejects.toThrow(/not valid JSON/);
    expect([configReads(broken), imported]).toEqual([1, ['@mllm/parrot']]);
  });
});
