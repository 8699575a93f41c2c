/**
 * The demo page in Debian's headless Chromium (`/usr/bin/chromium`, driven by playwright-core; no
 * downloaded browser). The test writes a seeded, untrained checkpoint, builds the page with Vite
 * into a temporary directory and serves it with `vite preview` on 127.0.0.1 (free port).
 *
 * - WebGPU: the page must report the webgpu backend; answer, ParrotMoE text attention and routing,
 *   and the Wings router blend must equal the same code's result in Node on the cpu backend.
 * - Fallback: a Chromium without `--enable-unsafe-webgpu` (no WebGPU adapter) must run on wasm,
 *   say so in a visible notice, and give the same numbers.
 * - `checks.html`: core's browser-safe checks must all pass on webgpu and on wasm, leak-free.
 * Screenshots go to `examples/browser-demo/test-artifacts/` (git-ignored).
 *
 * Runs only in the `cpu` project (it drives its own browser backends; the Node reference is cpu).
 */
import '@tensorflow/tfjs'; // Node: gradients and chained tensor methods
import * as tf from '@tensorflow/tfjs-core';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import type { PreviewServer } from 'vite';
import { makeDemoCheckpoint } from '../scripts/make-demo-checkpoint.js';
import { readDemoCheckpoint } from '../scripts/checkpoint-files.js';
import { buildDemoModel, greedyGenerate, promptIdsFor, runDemo, type AssembledDemoModel, type DemoResult } from '../src/demo-model.js';
import { EXAMPLE_SCENE, downsampleRgba, renderSceneRgba } from '../src/scene.js';
import { QUESTIONS } from '../src/languages.js';
import { demoViteConfig } from '../vite.demo-config.js';

const CHROMIUM = '/usr/bin/chromium';
/** Flags: see README "Chromium flags". `--enable-unsafe-webgpu` is the one that enables the SwiftShader adapter. */
const BASE_FLAGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];
const WEBGPU_FLAGS = [...BASE_FLAGS, '--enable-unsafe-webgpu'];
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const NEW_TOKENS = 4;
const QUESTION = QUESTIONS.ar.colour; // right-to-left input

const runsHere = process.env.MLLM_TEST_BACKEND === 'cpu' && existsSync(CHROMIUM);

type PageResult = DemoResult & { backend: string; pixels: number[]; imageSize: number };

/** Largest |browser − node| seen per quantity (printed after the tests). */
const worstDifferences: Record<string, number> = {};

function expectAllClose(actual: number[] | null, expected: number[] | null, atol: number, what: string): void {
  expect(actual, what).not.toBeNull();
  expect(expected, what).not.toBeNull();
  expect(actual!.length, `${what} length`).toBe(expected!.length);
  let worst = 0;
  actual!.forEach((v, i) => {
    worst = Math.max(worst, Math.abs(v - expected![i]!));
  });
  worstDifferences[what] = Math.max(worstDifferences[what] ?? 0, worst);
  expect(worst, `${what}: max |browser − node|`).toBeLessThanOrEqual(atol);
}

/** The browser's result equals the Node cpu result of the same code on the same input. */
function expectSameResult(browser: PageResult, node: DemoResult, atol: number): void {
  const prefix = `${browser.backend} `;
  expect(browser.promptIds).toEqual(node.promptIds);
  expect(browser.answerIds).toEqual(node.answerIds);
  expect(browser.answer).toBe(node.answer);
  expect(browser.splicedIds).toEqual(node.splicedIds);
  expect(browser.imageSpan).toEqual(node.imageSpan);
  expectAllClose(browser.textAttention, node.textAttention, atol, `${prefix}textAttention`);
  expectAllClose(browser.routingWeights, node.routingWeights, atol, `${prefix}routingWeights`);
  expect(browser.wings?.layers).toEqual(node.wings?.layers);
  node.wings!.visualWeight.forEach((row, l) => expectAllClose(browser.wings!.visualWeight[l]!, row, atol, `${prefix}wings`));
  expectAllClose([browser.answerLogProb], [node.answerLogProb], atol * 10, `${prefix}answerLogProb`);
}

describe.skipIf(!runsHere)('browser demo in headless Chromium', () => {
  let checkpointDir: string;
  let profiles: string[] = [];
  let server: PreviewServer;
  let outDir: string;
  let baseUrl: string;
  let demo: AssembledDemoModel;
  let chromium: typeof import('playwright-core').chromium;
  const contexts: BrowserContext[] = [];
  const timings: Record<string, number> = {};

  async function launch(flags: string[]): Promise<BrowserContext> {
    const profile = mkdtempSync(join(tmpdir(), 'mllm-chromium-'));
    profiles.push(profile);
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: flags,
      viewport: { width: 1280, height: 1200 },
    });
    contexts.push(context);
    return context;
  }

  async function openPage(context: BrowserContext, path: string): Promise<{ page: Page; errors: string[] }> {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    await page.goto(`${baseUrl}${path}`);
    return { page, errors };
  }

  async function waitForState(page: Page, states: string[], timeout = 150_000): Promise<string> {
    await page.waitForFunction((wanted) => wanted.includes(document.body.dataset.state ?? ''), states, { timeout });
    const state = await page.evaluate(() => document.body.dataset.state ?? '');
    if (state === 'error') throw new Error(`page error: ${await page.evaluate(() => window.__mllmDemo?.error)}`);
    return state;
  }

  beforeAll(async () => {
    const started = Date.now();
    checkpointDir = mkdtempSync(join(tmpdir(), 'mllm-demo-checkpoint-'));
    await makeDemoCheckpoint({ dir: checkpointDir, seed: 1234 });
    const bytes = readdirSync(checkpointDir).reduce((n, f) => n + statSync(join(checkpointDir, f)).size, 0);
    expect(bytes).toBeLessThan(5 * 1024 * 1024);
    demo = buildDemoModel(await readDemoCheckpoint(checkpointDir));
    // a production build served statically: no dependency optimizer at page load (deterministic)
    const { build, preview } = await import('vite');
    outDir = mkdtempSync(join(tmpdir(), 'mllm-demo-dist-'));
    await build({ ...demoViteConfig({ checkpointDir, outDir }), configFile: false, logLevel: 'error' });
    timings.buildMs = Date.now() - started;
    server = await preview({ ...demoViteConfig({ checkpointDir, outDir }), configFile: false, logLevel: 'warn', preview: { host: '127.0.0.1', port: 0, strictPort: false } });
    baseUrl = server.resolvedUrls!.local[0]!.replace(/\/$/, '');
    expect(baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    ({ chromium } = await import('playwright-core'));
    mkdirSync(ARTIFACTS, { recursive: true });
    timings.setupMs = Date.now() - started;
  });

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => {});
    await server?.close();
    demo?.dispose();
    for (const dir of [checkpointDir, outDir, ...profiles]) if (dir) rmSync(dir, { recursive: true, force: true });
    console.log(`browser demo timings (ms): ${JSON.stringify(timings)}`);
    console.log(`max |browser − node cpu|: ${JSON.stringify(worstDifferences, (_, v) => (typeof v === 'number' ? Number(v.toExponential(2)) : v))}`);
  });

  it('runs on WebGPU and matches Node cpu: answer, text attention, routing, Wings blend', async () => {
    const started = Date.now();
    const context = await launch(WEBGPU_FLAGS);
    const { page, errors } = await openPage(context, `/?lang=ar&tokens=${NEW_TOKENS}`);
    await waitForState(page, ['ready', 'error']);
    const backend = await page.evaluate(() => window.__mllmDemo.backend);
    expect(backend?.backend).toBe('webgpu');
    expect(backend?.adapter).toMatch(/swiftshader|hardware/);
    expect(await page.locator('#backend-badge').textContent()).toMatch(/^webgpu/);
    expect(await page.locator('#backend-notice').isHidden()).toBe(true);

    // drive the UI: example scene, Arabic question (the box must switch to right-to-left)
    await page.click('#example-scene');
    await page.selectOption('#language', 'ar');
    await page.fill('#question', QUESTION);
    expect(await page.locator('#question').getAttribute('dir')).toBe('rtl');
    await page.click('#ask');
    await waitForState(page, ['done', 'error']);
    timings.webgpuPageMs = Date.now() - started;
    const result = (await page.evaluate(() => window.__mllmDemo.lastResult)) as PageResult;
    expect(result.backend).toBe('webgpu');
    expect(result.question).toBe(QUESTION);

    // the canvas → model-input path gives exactly the pixels computed here from the same scene
    const expectedPixels = downsampleRgba(renderSceneRgba(256, EXAMPLE_SCENE), 256, result.imageSize);
    expectAllClose(result.pixels, Array.from(expectedPixels), 1e-6, 'pixels');

    const node = await runDemo(demo, { pixels: Float32Array.from(result.pixels), question: QUESTION, maxNewTokens: NEW_TOKENS });
    expectSameResult(result, node, 2e-5);
    expect(node.answerIds.length).toBeGreaterThan(0);

    // the charts were drawn by vega: 6 expert bars, one attention bar per prompt character, 2 Wings rows
    expect(await page.locator('#chart-routing svg .mark-rect path').count()).toBe(6);
    expect(await page.locator('#chart-attention svg .mark-rect path').count()).toBeGreaterThan(10);
    expect(await page.locator('#chart-wings svg .mark-rect').count()).toBe(2);
    expect(await page.locator('#answer').textContent()).toBe(node.answer.length > 0 ? node.answer : '(empty answer)');
    await page.screenshot({ path: join(ARTIFACTS, 'webgpu-demo.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  }, 200_000);

  it('falls back to wasm with a visible notice when WebGPU has no adapter, same numbers', async () => {
    const started = Date.now();
    const context = await launch(BASE_FLAGS); // no --enable-unsafe-webgpu: requestAdapter() gives null
    const question = QUESTIONS.zh.count;
    const { page, errors } = await openPage(context, `/?scene=example&lang=zh&tokens=2&autorun=1&q=${encodeURIComponent(question)}`);
    await waitForState(page, ['done', 'error']);
    timings.wasmPageMs = Date.now() - started;
    const notice = page.locator('#backend-notice');
    expect(await notice.isVisible()).toBe(true);
    expect(await notice.textContent()).toMatch(/WebAssembly \(wasm\).*webgpu could not start/);
    expect(await page.locator('#backend-badge').textContent()).toBe('wasm');
    const result = (await page.evaluate(() => window.__mllmDemo.lastResult)) as PageResult;
    expect(result.backend).toBe('wasm');
    const node = await runDemo(demo, { pixels: Float32Array.from(result.pixels), question, maxNewTokens: 2 });
    expectSameResult(result, node, 2e-5);
    await page.screenshot({ path: join(ARTIFACTS, 'wasm-fallback.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  }, 200_000);

  it('passes the @mllm/core checks on webgpu and wasm in the page', async () => {
    const started = Date.now();
    const context = contexts[0]!; // the WebGPU-enabled browser
    const { page, errors } = await openPage(context, '/checks.html');
    await page.waitForFunction(() => window.__mllmChecks?.done === true, null, { timeout: 150_000 });
    timings.checksMs = Date.now() - started;
    const state = await page.evaluate(() => window.__mllmChecks);
    expect(state.reports.map((r) => r.backend)).toEqual(['webgpu', 'wasm']);
    for (const report of state.reports) {
      expect('startError' in report ? report.startError : '', `${report.backend} start`).toBe('');
      if ('startError' in report) continue;
      const failures = report.outcomes.filter((o) => !o.passed).map((o) => `${o.name}: ${o.message}`);
      expect(failures, `${report.backend} failures`).toEqual([]);
      expect(report.passed).toBe(state.expectedChecks);
      expect(report.leakedTensors).toBe(0);
    }
    await page.screenshot({ path: join(ARTIFACTS, 'core-checks.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  }, 200_000);

  it('greedyGenerate (async reads, used by the page) gives HostMLLM.generate\'s tokens', async () => {
    const promptIds = promptIdsFor(demo, QUESTIONS.en.shape);
    const pixels = downsampleRgba(renderSceneRgba(256, EXAMPLE_SCENE), 256, 32);
    const image = tf.tensor4d(pixels, [1, 32, 32, 3]);
    const features = demo.model.encodeImages(image);
    try {
      const before = tf.memory().numTensors;
      const ours = await greedyGenerate(demo.model, promptIds, features, 6);
      expect(tf.memory().numTensors).toBe(before);
      const reference = demo.model.generate([promptIds], image, { maxNewTokens: 6 }).tokenIds[0];
      expect(ours).toEqual(reference);
    } finally {
      tf.dispose([image, features]);
    }
  });

  it('runDemo keeps the tensor count flat and names bad inputs (Node)', async () => {
    const pixels = downsampleRgba(renderSceneRgba(256, EXAMPLE_SCENE), 256, 32);
    const before = tf.memory().numTensors;
    const result = await runDemo(demo, { pixels, question: QUESTIONS.tr.shape, maxNewTokens: 2 });
    expect(tf.memory().numTensors).toBe(before);
    expect(result.textAttention!.length).toBe(result.textIds.length);
    expect(result.wings!.visualWeight[0]!.length).toBe(result.splicedIds.length);
    await expect(runDemo(demo, { pixels: pixels.slice(1), question: 'x' })).rejects.toThrow(/pixels must hold S·S·C = 32·32·3 = 3072 values, got 3071/);
    await expect(runDemo(demo, { pixels, question: '  ' })).rejects.toThrow(/question must be a non-empty string/);
    expect(tf.memory().numTensors).toBe(before);
  });
});
