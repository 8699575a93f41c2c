/**
 * The quiet Vulkan driver check before Dawn starts: without a driver manifest `initBackend` reports
 * "no Vulkan driver" itself instead of letting the Vulkan loader print "Found no drivers!" to stderr.
 * Environment-only checks; the cpu project runs them once.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureNodeNavigatorGpu, vulkanDriverManifests, vulkanIcdDirectories } from './node-webgpu.js';
import { skipOnBackend } from '../testing/index.js';

const KEYS = ['VK_ICD_FILENAMES', 'VK_DRIVER_FILES', 'XDG_CONFIG_DIRS', 'XDG_DATA_DIRS', 'XDG_DATA_HOME', 'HOME'] as const;
const saved = Object.fromEntries(KEYS.map((k) => [k, process.env[k]]));
const hasGpu = () => (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu !== undefined;

describe.skipIf(skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'environment checks; the cpu project runs them once'))('Vulkan driver manifests (Node, Linux)', () => {
  const root = mkdtempSync(join(tmpdir(), 'mllm-vk-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  afterEach(() => {
    for (const k of KEYS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  function isolate(): void {
    for (const k of KEYS) delete process.env[k];
    process.env.XDG_CONFIG_DIRS = join(root, 'config');
    process.env.XDG_DATA_DIRS = join(root, 'data');
    process.env.HOME = join(root, 'home');
  }
  /** The fixed system directories the loader also reads (outside what the test can redirect). */
  const systemDirsHaveDrivers = () => ['/etc/vulkan/icd.d', '/usr/local/etc/vulkan/icd.d'].some((d) => existsSync(d) && readdirSync(d).some((f) => f.endsWith('.json')));

  it('searches the loader directories and finds *.json manifests there', async () => {
    isolate();
    expect(vulkanIcdDirectories()).toEqual([
      join(root, 'config/vulkan/icd.d'), '/usr/local/etc/vulkan/icd.d', '/etc/vulkan/icd.d',
      join(root, 'home/.local/share/vulkan/icd.d'), join(root, 'data/vulkan/icd.d'),
    ]);
    mkdirSync(join(root, 'data/vulkan/icd.d'), { recursive: true });
    writeFileSync(join(root, 'data/vulkan/icd.d/nvidia_icd.json'), '{}');
    writeFileSync(join(root, 'data/vulkan/icd.d/readme.txt'), '');
    expect(await vulkanDriverManifests()).toContain(join(root, 'data/vulkan/icd.d/nvidia_icd.json'));
    expect((await vulkanDriverManifests()).some((f) => f.endsWith('readme.txt'))).toBe(false);
    process.env.VK_ICD_FILENAMES = '/a.json:/b.json';
    expect(await vulkanDriverManifests()).toEqual(['/a.json', '/b.json']); // taken as given
    rmSync(join(root, 'data'), { recursive: true, force: true });
  });

  it.skipIf(process.platform !== 'linux' || hasGpu() || systemDirsHaveDrivers() || existsSync('/usr/lib/chromium/vk_swiftshader_icd.json'))(
    'without any driver, WebGPU in Node is declined with the reason, before Dawn is loaded',
    async () => {
      isolate();
      const setup = await ensureNodeNavigatorGpu();
      expect(setup).toMatchObject({ ok: false });
      expect((setup as { why: string }).why).toMatch(/^no Vulkan driver is installed \(no ICD manifest in .*VK_ICD_FILENAMES unset\)$/);
      expect(hasGpu()).toBe(false);
    },
  );
});
