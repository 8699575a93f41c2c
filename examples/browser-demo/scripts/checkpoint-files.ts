/**
 * Node: read a demo checkpoint directory into `DemoCheckpointFiles` (the browser page fetches the
 * same files over HTTP).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostMLLMConfig } from '@mllm/models';
import { DEMO_MANIFEST_FILE, PARROT_EXAMPLE_FILES, inferManifest, type DemoCheckpointFiles, type DemoManifest } from '../src/demo-model.js';

/** Reads `mllm-demo.json` (or infers it, see `inferManifest`), the host config and the weight files. */
export async function readDemoCheckpoint(dir: string): Promise<DemoCheckpointFiles> {
  const readJson = async (file: string) => JSON.parse(await readFile(join(dir, file), 'utf8')) as Record<string, unknown>;
  const manifest = existsSync(join(dir, DEMO_MANIFEST_FILE))
    ? ((await readJson(DEMO_MANIFEST_FILE)) as unknown as DemoManifest)
    : inferManifest(existsSync(join(dir, PARROT_EXAMPLE_FILES.moeConfig)) ? await readJson(PARROT_EXAMPLE_FILES.moeConfig) : null);
  const hostConfig = JSON.parse(await readFile(join(dir, manifest.hostConfig), 'utf8')) as HostMLLMConfig;
  const weights = await Promise.all(manifest.weights.map(async (file) => new Uint8Array(await readFile(join(dir, file)))));
  return { manifest, hostConfig, weights };
}
