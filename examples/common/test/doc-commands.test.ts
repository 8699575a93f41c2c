/**
 * The command lines and install lines that README.md, docs/*.md and the package READMEs show, checked
 * as written:
 * - every `pnpm <script> …` names a root script, and for the example scripts the argv pnpm hands to
 *   the example (everything after the script name, `--` included: the nested `pnpm … start` passes it
 *   on) parses with that example's own flag list;
 * - every `npm install` line of a package's README and its docs page installs a tfjs backend (else
 *   `initBackend('auto')` has nothing to start) and every package the page's code imports.
 * Pure text checks, so they run in the cpu project only.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { skipOnBackend } from '@mllm/core/testing';
import { parseExampleFlags } from '../src/index.js';

const root = resolve(import.meta.dirname, '../../..');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');
const docs = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const packages = ['core', 'parrot', 'wings', 'vpgc', 'eval'];
const packageReadmes = packages.map((p) => `packages/${p}/README.md`);
const rootScripts = JSON.parse(read('package.json')).scripts as Record<string, string>;

/** The flags each example's main.ts declares (kept in step with `examples/<name>/src/main.ts`). */
const exampleMains: Record<string, string> = {
  'example:parrot': 'examples/parrot-multilingual/src/main.ts',
  'example:wings': 'examples/wings-text-retention/src/main.ts',
  'example:vpgc': 'examples/vpgc-demonstrative/src/main.ts',
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
        if (builtins.has(script)) continue;
        expect(rootScripts[script], `${doc}: '${command}' names no root script`).toBeTypeOf('string');
      }
    });

    it("every example command line's flags parse as pnpm passes them on ('--' included)", () => {
      const examples = commands.filter((c) => c.command.split(/\s+/)[1] in exampleMains);
      expect(examples.length).toBeGreaterThan(0);
      for (const { doc, command } of examples) {
        const [, script, ...argv] = command.split(/\s+/);
        const extraFlags = extraFlagsOf(exampleMains[script]);
        expect(() => parseExampleFlags(argv, { out: 'o', seeds: [0], extraFlags }), `${doc}: ${command}`).not.toThrow();
      }
      // The form the README documents: pnpm hands `-- --backend cpu …` on verbatim.
      const f = parseExampleFlags(['--', '--backend', 'cpu', '--steps', '20', '--seeds', '1'], { out: 'o', seeds: [0] });
      expect(f).toMatchObject({ backend: 'cpu', steps: 20, seeds: [1] });
    });

    it('each package page installs a backend and every package its code imports', () => {
      const pages = [...packageReadmes, 'docs/parrot.md', 'docs/wings.md', 'docs/vpgc.md', 'docs/core.md', 'docs/eval.md'];
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
