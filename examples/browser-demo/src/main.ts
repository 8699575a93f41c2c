/**
 * The demo page: start WebGPU (wasm fallback with a notice), load the checkpoint served at
 * `?checkpoint=` (default `/checkpoint/`), then answer questions about the drawn/picked image and
 * chart ParrotMoE's text attention and routing and the Wings router's visual/textual blend.
 *
 * URL parameters: `backend=webgpu|wasm|cpu` (default webgpu), `checkpoint=<url dir>`,
 * `lang=<code>`, `q=<question>`, `scene=example`, `autorun=1`, `tokens=<max new tokens>`.
 * State for tests and the console: `window.__mllmDemo` and `document.body.dataset.state`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { startPageBackend, type PageBackend, type StartedBackend } from './backend.js';
import { renderChart, routingSpec, textAttentionSpec, wingsBlendSpec } from './charts.js';
import { DEMO_MANIFEST_FILE, PARROT_EXAMPLE_FILES, buildDemoModel, inferManifest, runDemo, type AssembledDemoModel, type DemoManifest, type DemoResult } from './demo-model.js';
import { DrawingCanvas, type Tool } from './drawing.js';
import { LANGUAGES, LANGUAGE_CODES, QUESTIONS, guessLanguage, type LanguageCode } from './languages.js';
import { PALETTE, type PaletteColour } from './scene.js';
import type { HostMLLMConfig } from '@mllm/models';

interface DemoPageState {
  state: 'loading' | 'ready' | 'running' | 'done' | 'error';
  backend: StartedBackend | null;
  error: string | null;
  parameterCount: number | null;
  /** The last run's result, with the exact model input pixels. */
  lastResult: (DemoResult & { backend: string; pixels: number[]; imageSize: number }) | null;
  runs: number;
}

declare global {
  interface Window {
    __mllmDemo: DemoPageState;
  }
}

const page: DemoPageState = { state: 'loading', backend: null, error: null, parameterCount: null, lastResult: null, runs: 0 };
window.__mllmDemo = page;

const params = new URLSearchParams(location.search);
const element = <T extends HTMLElement>(id: string): T => {
  const found = document.getElementById(id);
  if (!found) throw new Error(`page: missing #${id}`);
  return found as T;
};

function setState(state: DemoPageState['state']): void {
  page.state = state;
  document.body.dataset.state = state;
}

function showError(error: unknown): void {
  const message = error instanceof Error ? `${error.message}` : String(error);
  page.error = message;
  const box = element('error');
  box.textContent = message;
  box.hidden = false;
  setState('error');
  console.error(error);
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`could not load ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function fetchJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(
      `could not load ${url}: HTTP ${response.status}. ` +
        'Write the demo checkpoint first (pnpm --filter @mllm-example/browser-demo checkpoint) or pass ?checkpoint=<url of a checkpoint directory>.',
    );
  }
  return (await response.json()) as T;
}

/** `mllm-demo.json`, or one inferred from the Parrot example's layout when there is none. */
async function loadManifest(dir: string): Promise<DemoManifest> {
  const response = await fetch(`${dir}${DEMO_MANIFEST_FILE}`);
  if (response.ok) return (await response.json()) as DemoManifest;
  if (response.status !== 404) throw new Error(`could not load ${dir}${DEMO_MANIFEST_FILE}: HTTP ${response.status}`);
  const moe = await fetch(`${dir}${PARROT_EXAMPLE_FILES.moeConfig}`);
  return inferManifest(moe.ok ? ((await moe.json()) as Record<string, unknown>) : null);
}

async function loadModel(base: string): Promise<AssembledDemoModel> {
  const dir = base.endsWith('/') ? base : `${base}/`;
  const manifest = await loadManifest(dir);
  const hostConfig = await fetchJson<HostMLLMConfig>(`${dir}${manifest.hostConfig}`);
  const weights = await Promise.all(manifest.weights.map((file) => fetchBytes(`${dir}${file}`)));
  return buildDemoModel({ manifest, hostConfig, weights });
}

// ------------------------------------------------------------------ image panel

const drawing = new DrawingCanvas(element<HTMLCanvasElement>('drawing'));
let imageSize = 32;

function updateModelView(): void {
  const view = element<HTMLCanvasElement>('model-view');
  const pixels = drawing.modelPixels(imageSize);
  const small = new ImageData(imageSize, imageSize);
  for (let i = 0; i < imageSize * imageSize; i++) {
    for (let c = 0; c < 3; c++) small.data[i * 4 + c] = Math.round(pixels[i * 3 + c]! * 255);
    small.data[i * 4 + 3] = 255;
  }
  const scratch = document.createElement('canvas');
  scratch.width = imageSize;
  scratch.height = imageSize;
  scratch.getContext('2d')!.putImageData(small, 0, 0);
  const context = view.getContext('2d')!;
  context.imageSmoothingEnabled = false;
  context.drawImage(scratch, 0, 0, view.width, view.height);
  element('model-view-caption').textContent = `model input ${imageSize}×${imageSize}`;
}
drawing.onChange(updateModelView);

for (const button of document.querySelectorAll<HTMLButtonElement>('[data-tool]')) {
  button.addEventListener('click', () => {
    drawing.tool = button.dataset.tool as Tool;
    for (const other of document.querySelectorAll('[data-tool]')) other.classList.toggle('active', other === button);
  });
}
const palette = element('palette');
for (const entry of PALETTE) {
  const swatch = document.createElement('button');
  swatch.type = 'button';
  swatch.title = entry.name;
  swatch.dataset.colour = entry.name;
  swatch.style.background = entry.css;
  swatch.classList.toggle('active', entry.name === drawing.colour);
  swatch.addEventListener('click', () => {
    drawing.colour = entry.name as PaletteColour;
    for (const other of palette.children) other.classList.toggle('active', other === swatch);
  });
  palette.append(swatch);
}
element<HTMLInputElement>('stamp-size').addEventListener('input', (event) => {
  drawing.size = Number((event.target as HTMLInputElement).value);
});
element('example-scene').addEventListener('click', () => drawing.drawExample());
element('clear-canvas').addEventListener('click', () => drawing.clear());
element<HTMLInputElement>('image-file').addEventListener('change', async (event) => {
  const file = (event.target as HTMLInputElement).files?.[0];
  if (file) await drawing.drawFile(file).catch(showError);
});

// ------------------------------------------------------------------ question panel

const languageSelect = element<HTMLSelectElement>('language');
const questionBox = element<HTMLTextAreaElement>('question');
for (const code of LANGUAGE_CODES) {
  const option = document.createElement('option');
  option.value = code;
  option.textContent = `${code} · ${LANGUAGES[code].name}`;
  languageSelect.append(option);
}

function applyDirection(): void {
  const code = languageSelect.value as LanguageCode;
  questionBox.dir = LANGUAGES[code].dir;
  questionBox.lang = code;
}
let sampleIndex = 0;
function sampleQuestion(): void {
  const kinds = ['colour', 'shape', 'count'] as const;
  questionBox.value = QUESTIONS[languageSelect.value as LanguageCode][kinds[sampleIndex++ % kinds.length]!];
}
languageSelect.addEventListener('change', () => {
  applyDirection();
  sampleQuestion();
});
questionBox.addEventListener('input', () => {
  const guessed = guessLanguage(questionBox.value);
  if (guessed && guessed !== languageSelect.value && (guessed === 'ar' || LANGUAGES[languageSelect.value as LanguageCode].dir === 'rtl')) {
    languageSelect.value = guessed;
    applyDirection();
  }
});
element('sample-question').addEventListener('click', sampleQuestion);

// ------------------------------------------------------------------ run

let demo: AssembledDemoModel | null = null;
const askButton = element<HTMLButtonElement>('ask');

async function ask(): Promise<void> {
  if (!demo || page.state === 'running') return;
  setState('running');
  askButton.disabled = true;
  element('error').hidden = true;
  element('run-info').textContent = 'thinking…';
  try {
    const pixels = drawing.modelPixels(imageSize);
    const maxNewTokens = params.has('tokens') ? Number(params.get('tokens')) : undefined;
    const result = await runDemo(demo, { pixels, question: questionBox.value, maxNewTokens });
    const tokenizer = demo.model.tokenizer;
    const answer = element('answer');
    answer.textContent = result.answer.length > 0 ? result.answer : '(empty answer)';
    answer.lang = guessLanguage(result.answer) ?? '';
    element('run-info').textContent =
      `${result.answerIds.length} tokens in ${(result.timings.generateMs / 1000).toFixed(2)} s, analysis ${(result.timings.analyzeMs / 1000).toFixed(2)} s on ${tf.getBackend()} · mean answer log-prob ${result.answerLogProb.toFixed(3)}`;
    if (result.textAttention) await renderChart(element('chart-attention'), textAttentionSpec(result, tokenizer));
    else element('chart-attention').textContent = 'this checkpoint has no ParrotMoE';
    if (result.routingWeights) await renderChart(element('chart-routing'), routingSpec(result));
    if (result.wings) await renderChart(element('chart-wings'), wingsBlendSpec(result, tokenizer));
    else element('chart-wings').textContent = 'this checkpoint has no stage-2 Wings router';
    page.lastResult = { ...result, backend: tf.getBackend(), pixels: Array.from(pixels), imageSize };
    page.runs += 1;
    setState('done');
  } catch (error) {
    showError(error);
  } finally {
    askButton.disabled = false;
  }
}
askButton.addEventListener('click', () => void ask());
questionBox.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    void ask();
  }
});

async function start(): Promise<void> {
  const language = (params.get('lang') ?? 'en') as LanguageCode;
  languageSelect.value = LANGUAGE_CODES.includes(language) ? language : 'en';
  applyDirection();
  if (params.has('q')) questionBox.value = params.get('q')!;
  else sampleQuestion();
  if (params.get('scene') === 'example') drawing.drawExample();

  const preferred = (params.get('backend') ?? 'webgpu') as PageBackend;
  const started = await startPageBackend(['webgpu', 'wasm', 'cpu'].includes(preferred) ? preferred : 'webgpu');
  page.backend = started;
  const badge = element('backend-badge');
  badge.textContent = started.backend + (started.adapter ? ` · ${started.adapter}` : '');
  badge.className = `badge ${started.backend}`;
  badge.title = started.details;
  if (started.notice) {
    const notice = element('backend-notice');
    notice.textContent = started.notice;
    notice.hidden = false;
  }

  const checkpoint = params.get('checkpoint') ?? `${import.meta.env.BASE_URL}checkpoint/`;
  demo = await loadModel(checkpoint);
  imageSize = demo.model.visionTower.visionConfig.imageSize;
  updateModelView();
  page.parameterCount = demo.parameterCount;
  const m = demo.manifest;
  element('model-info').textContent =
    `${(demo.parameterCount / 1e6).toFixed(2)} M parameters · ${m.parrot ? `Parrot ${m.parrot.args.numExperts} experts` : 'no Parrot'} · ${m.wings ? `Wings stage ${m.wings.stage}` : 'no Wings'}`;
  element('checkpoint-info').textContent = `checkpoint ${checkpoint}${m.description ? ` — ${m.description}` : ''}`;
  askButton.disabled = false;
  setState('ready');
  if (params.get('autorun') === '1') await ask();
}

start().catch(showError);
