/**
 * Node: read a demo checkpoint directory into `DemoCheckpointFiles` (the browser page fetches the
 * same files over HTTP).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostMLLMConfig } from '@mllm/core';
import { DEMO_MANIFEST_FILE, type DemoCheckpointFiles, type DemoManifest } from '../src/demo-model.js';

export async function readDemoCheckpoint(dir: string): Promise<DemoCheckpointFiles> {
  const manifest = JSON.parse(await readFile(join(dir, DEMO_MANIFEST_FILE), 'utf8')) as DemoManifest;
  const hostConfig = JSON.parse(await readFile(join(dir, manifest.hostConfig), 'utf8')) as HostMLLMConfig;
  const weights = await Promise.all(manifest.weights.map(async (file) => new Uint8Array(await readFile(join(dir, file)))));
  return { manifest, hostConfig, weights };
}
