/**
 * The command lines and install lines that README.md, docs/**\/*.md and the package and example
 * READMEs show, checked as written (scripts/doc-commands.mjs runs them in CI; here, without running):
 * - every line falls under a reviewed rule of scripts/doc-commands.mjs (run, run by CI or a test, or
 *   skipped with a reason) and passes its parse check;
 * - every `pnpm <script> …` names a root script, and for the example scripts the argv pnpm hands to
 *   the example (everything after the script name, `--` included: the nested `pnpm … start` passes it
 *   on) parses with that example's own flag list;
 * - every `npm install` line of a package's README and its docs page installs a tfjs backend (else
 *   `initBackend('auto')` has nothing to start) and every package the page's code imports.
 * Pure text checks, so they run in the cpu project only.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { skipOnBackend } from '@mllm/core/testing';
import { parseExampleFlags } from '../src/index.js';
import { docFiles, inventory, parseProblems, ruleFor } from '../../../scripts/doc-commands.mjs';

const root = resolve(import.meta.dirname, '../../..');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');
const docs = docFiles(root);
const packages = readdirSync(join(root, 'packages')).filter((p) => existsSync(join(root, 'packages', p, 'package.json')));
const packageReadmes = packages.map((p) => `packages/${p}/README.md`);
const rootScripts = JSON.parse(read('package.json')).scripts as Record<string, string>;

/** Each example's main.ts, under the root script's name and under `--filter <package> start`. */
const exampleMains: Record<string, string> = {
  'example:parrot': 'examples/parrot-multilingual/src/main.ts',
  'example:wings': 'examples/wings-text-retention/src/main.ts',
  'example:vpgc': 'examples/vpgc-demonstrative/src/main.ts',
  '@mllm-example/parrot-multilingual': 'examples/parrot-multilingual/src/main.ts',
  '@mllm-example/wings-text-retention': 'examples/wings-text-retention/src/main.ts',
  '@mllm-example/vpgc-demonstrative': 'examples/vpgc-demonstrative/src/main.ts',
};
function extraFlagsOf(main: string): string[] {
  const m = /extraFlags:\s*\[([^\]]*)\]/.exec(read(main));
  if (!m) throw new Error(`${main}: no extraFlags list found`);
  return [...m[1].matchAll(/'([^']+)'/g)].map((x) => x[1]);
}

/** `pnpm …` command lines in code spans and in ```sh blocks (a line may chain several with &&). */
function pnpmCommands(text: string): string[] {
  const found: string[] = [];
  const spans = [...text.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]);
  const blocks = [...text.matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)].flatMap((m) => m[1].split('\n'));
  for (const line of [...spans, ...blocks]) {
    for (const part of line.replace(/#.*$/, '').split(/&&|;/)) {
      const words = part.trim().split(/\s+/);
      const at = words.indexOf('pnpm');
      if (at >= 0 && words[at + 1] !== undefined) found.push(words.slice(at).join(' '));
    }
  }
  return found;
}

/** `npm install …` lines in ```sh blocks, with `\` continuations joined. */
function npmInstalls(text: string): string[][] {
  const blocks = [...text.matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)].map((m) => m[1].replace(/\\\n/g, ' '));
  return blocks
    .flatMap((b) => b.split('\n'))
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter((l) => l.startsWith('npm install '))
    .map((l) => l.split(/\s+/).slice(2).map((p) => p.replace(/(.)@[^@/]+$/, '$1')));
}

/** Bare package names imported by the ```ts / ```js blocks of a page. */
function importedPackages(text: string): Set<string> {
  const code = [...text.matchAll(/```(?:ts|js|mjs|typescript)\n([\s\S]*?)```/g)].map((m) => m[1]).join('\n');
  const names = new Set<string>();
  for (const m of code.matchAll(/(?:from|import)\s+'([^'.][^']*)'/g)) {
    const spec = m[1];
    if (spec.startsWith('node:')) continue;
    const parts = spec.split('/');
    names.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]);
  }
  return names;
}

const BACKENDS = ['@tensorflow/tfjs-backend-cpu', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-backend-webgpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs'];

describe.skipIf(skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'text checks of the docs; the cpu project runs them once'))(
  'command lines shown in README.md and docs',
  () => {
    const commands = docs.flatMap((d) => pnpmCommands(read(d)).map((c) => ({ doc: d, command: c })));

    it('finds the documented example command lines', () => {
      expect(commands.map((c) => c.command)).toContain('pnpm example:parrot -- --backend wasm --steps 20 --seeds 1');
      expect(commands.map((c) => c.command)).toContain('pnpm example:parrot -- --budget full');
    });

    it('every `pnpm <script>` names a root script or a pnpm command', () => {
      const builtins = new Set(['add', 'install', 'vitest', 'changeset', 'pack', 'exec', 'dlx', 'tsx']);
      for (const { doc, command } of commands) {
        const script = command.split(/\s+/)[1];
        if (builtins.has(script) || script === '--filter') continue; // --filter: a package's script, checked by parseProblems
        expect(rootScripts[script], `${doc}: '${command}' names no root script`).toBeTypeOf('string');
      }
    });

    it("every example command line's flags parse as pnpm passes them on ('--' included)", () => {
      // `pnpm example:x …` and `pnpm --filter @mllm-example/x start …`: argv is what follows the script name.
      const examples = commands
        .map((c) => ({ ...c, words: c.command.split(/\s+/) }))
        .map((c) => (c.words[1] === '--filter' && c.words[3] === 'start' ? { ...c, main: exampleMains[c.words[2]], argv: c.words.slice(4) } : { ...c, main: exampleMains[c.words[1]], argv: c.words.slice(2) }))
        .filter((c) => c.main !== undefined);
      expect(examples.length).toBeGreaterThan(0);
      expect(examples.some((c) => c.words[1] === '--filter'), 'a `pnpm --filter @mllm-example/… start` line').toBe(true);
      for (const { doc, command, main, argv } of examples) {
        const extraFlags = extraFlagsOf(main as string);
        expect(() => parseExampleFlags(argv, { out: 'o', seeds: [0], extraFlags }), `${doc}: ${command}`).not.toThrow();
      }
      // The form the README documents: pnpm hands `-- --backend cpu …` on verbatim.
      const f = parseExampleFlags(['--', '--backend', 'cpu', '--steps', '20', '--seeds', '1'], { out: 'o', seeds: [0] });
      expect(f).toMatchObject({ backend: 'cpu', steps: 20, seeds: [1] });
    });

    it('each package page installs a backend and every package its code imports', () => {
      expect(packageReadmes).toContain('packages/pretrained/README.md');
      const pages = [...packageReadmes, 'docs/parrot.md', 'docs/wings.md', 'docs/vpgc.md', 'docs/core.md', 'docs/eval.md', 'docs/pretrained.md'];
      for (const page of pages) {
        const text = read(page);
        const installs = npmInstalls(text);
        expect(installs.length, `${page}: no npm install line`).toBeGreaterThan(0);
        const first = installs[0];
        expect(first.some((p) => BACKENDS.includes(p)), `${page}: '${first.join(' ')}' installs no tfjs backend`).toBe(true);
        const installed = new Set(installs.flat());
        for (const name of importedPackages(text)) {
          expect(installed.has(name), `${page}: code imports '${name}', which no install line on the page installs`).toBe(true);
        }
      }
    });
  },
);

describe.skipIf(skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'text checks of the docs; the cpu project runs them once'))(
  'scripts/doc-commands.mjs: every command line has a reviewed rule and parses',
  () => {
    const items = inventory(root);

    it('reads every document: README.md, docs/** and the README of every package and example folder', () => {
      for (const p of packages) expect(docs).toContain(`packages/${p}/README.md`);
      expect(docs).toContain('docs/examples/wings-text-retention.md');
      expect(docs).toContain('examples/browser-demo/README.md');
      expect(items.length).toBeGreaterThan(50);
    });

    it('each line falls under a rule; each line not run here says where it runs or why it cannot', () => {
      expect(items.filter((c) => c.rule === undefined).map((c) => `${c.doc}: ${c.line}`)).toEqual([]);
      for (const c of items) {
        if (c.rule?.action !== 'run') expect(c.rule?.reason, `${c.doc}: ${c.line}`).toMatch(/\S{3,}/);
        else expect(c.rule.budget, `${c.doc}: ${c.line}`).toBeGreaterThan(0);
      }
      const action = (line: string) => items.find((c) => c.line === line)?.rule?.action;
      expect(action('pnpm example:parrot -- --backend wasm --steps 20 --seeds 1')).toBe('run');
      expect(action('node tok.mjs')).toBe('run');
      expect(action('pnpm release')).toBe('skip');
      expect(action('pnpm test')).toBe('ci');
    });

    it('every line passes its parse check', () => {
      expect(items.filter((c) => c.problems.length > 0).map((c) => `${c.doc}: ${c.line}: ${c.problems.join('; ')}`)).toEqual([]);
    });

    it('the parse check rejects what would fail when run', () => {
      const at = (line: string, cwd = '.') => parseProblems({ line, cwd });
      expect(at('pnpm example:parrot -- --backend cpu --stepz 20')).toEqual([expect.stringContaining('--stepz')]);
      expect(at('pnpm --filter @mllm-example/wings-text-retention start --bogus 1')).toEqual([expect.stringContaining('--bogus')]);
      expect(at('pnpm --filter @mllm-example/nope start')).toEqual([expect.stringContaining('no workspace package')]);
      expect(at('pnpm frobnicate')).toEqual([expect.stringContaining("no script of that name in the root")]);
      expect(at('pnpm example:parrot', 'examples/browser-demo')).toEqual([expect.stringContaining('examples/browser-demo/package.json')]);
      expect(at('pnpm vitest run packages/nope.test.ts --project cpu')).toEqual([expect.stringContaining('packages/nope.test.ts')]);
      expect(at('pnpm vitest run packages/wings --project gpu')).toEqual([expect.stringContaining('--project gpu')]);
      expect(at('cd ../.. && pnpm vitest run --project cpu examples/browser-demo', 'examples')).not.toEqual([]);
      expect(at('cd ../.. && pnpm vitest run --project cpu examples/browser-demo', 'examples/browser-demo')).toEqual([]);
      expect(at('pnpm bench --repeats 3 --memory-8b')).toEqual([expect.stringContaining('--memory-8b')]);
      expect(at('npx tsx packages/vpgc/bench/nope.bench.ts')).toEqual([expect.stringContaining('nope.bench.ts')]);
      expect(at('mllm-eval --model m --dataset x.tsv')).toEqual([expect.stringContaining('--dataset')]);
      expect(ruleFor({ doc: 'README.md', line: 'pnpm frobnicate', kind: 'span', cwd: '.' })).toBeUndefined();
    });
  },
);
