#!/usr/bin/env node
/**
 * Every command line the docs show, run as written.
 *
 * Reads README.md, docs/**\/*.md, packages/<each>/README.md and examples/<each>/README.md at run time
 * and collects their command lines: the lines of ```sh / ```bash blocks, inline code spans outside
 * code blocks that are commands (`pnpm …`, `npx …`, `node …`, `ENV=… pnpm …`), and the
 * "save it in DIR/ and run `CMD` there" lines inside ```js snippets. Each line falls under the first
 * entry of RULES below that matches it (a line no rule matches fails the run, so a new docs line gets
 * reviewed):
 *
 * - `run`:  executed with bash, exactly as written, in its directory, under a time budget; what it
 *           writes (`writes`, or a snippet saved as the file the docs name) is removed afterwards
 *           unless it was there before, and any other new untracked or ignored path fails the line;
 * - `ci`:   already run by a step of `.ci/run` (the step's text is checked to be there);
 * - `test`: already run as written by the named test (checked to exist);
 *           (a usage line with optional parts in brackets, `template`, runs without them);
 * - `skip`: cannot run in CI (publishing, a dev server, hour-long runs), with the reason.
 *
 * Every line, whatever its rule, gets the parse check (`parseProblems`): each `pnpm <script>` names a
 * root script or a pnpm command, `pnpm --filter <pkg> <script>` a workspace package with that script,
 * every file or test path it names exists, and every `--flag` appears in the source of the program
 * that reads it. `examples/common/test/doc-commands.test.ts` runs the collection, the classification
 * and the parse checks in `pnpm test`; CI (`.ci/run`) runs this script after the tests.
 *
 * Usage: node scripts/doc-commands.mjs [--list] [--check] [--only TEXT]
 *   --list   print every line with its rule and exit
 *   --check  classification and parse checks only, nothing executed
 *   --only   run only the `run` lines containing TEXT
 * Exit code 0 = every line classified, parsed, and every `run` line exited 0 within its budget.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The documents read: README.md, docs/**, and the README of every package and example folder. */
export function docFiles(root = ROOT) {
  const files = ['README.md'];
  const walk = (dir) => {
    for (const name of readdirSync(join(root, dir)).sort()) {
      const path = `${dir}/${name}`;
      if (name === 'api' || name === 'node_modules') continue; // generated API reference
      if (statSync(join(root, path)).isDirectory()) walk(path);
      else if (name.endsWith('.md')) files.push(path);
    }
  };
  walk('docs');
  for (const group of ['packages', 'examples']) {
    for (const name of readdirSync(join(root, group)).sort()) {
      if (existsSync(join(root, group, name, 'README.md'))) files.push(`${group}/${name}/README.md`);
    }
  }
  return files;
}

const COMMAND_SPAN = /^(?:[A-Z_][A-Z0-9_]*=\S+ )*(?:pnpm|npm|npx|node|bash|mllm-eval|git|cd) \S/;
const stripComment = (line) => line.replace(/(^|\s)#(?![^"]*"\s*$).*$/, '').trim();

/**
 * The command lines of every document: `{ doc, line, kind: 'block' | 'span' | 'snippet', cwd,
 * snippet? }` (cwd relative to the root: the document's folder for example READMEs, which say "run
 * from here", else the root; a snippet line carries `{ file, code }` to save first).
 */
export function collectCommands(root = ROOT) {
  const out = [];
  for (const doc of docFiles(root)) {
    const text = readFileSync(join(root, doc), 'utf8');
    // An example's README says where it runs from: its `cd ../..` lines start in its folder.
    const cwdOf = (line) => (doc.startsWith('examples/') && line.startsWith('cd ') ? dirname(doc) : '.');
    for (const m of text.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)) {
      for (const raw of m[1].replace(/\\\n/g, ' ').split('\n')) {
        const line = stripComment(raw).replace(/\s+/g, ' ');
        if (line) out.push({ doc, line, kind: 'block', cwd: cwdOf(line) });
      }
    }
    // ```js snippets that say where to save them and what to run:
    // "// x.mjs: in this repository, [run `pnpm build` at the root, ]save it in DIR/ and run `CMD` there"
    for (const m of text.matchAll(/```(?:js|mjs)\n([\s\S]*?)```/g)) {
      const head = /^\/\/ (\S+\.m?js): in this repository, (?:run `([^`]+)` at the root, )?save it in (\S+?)\/? and run `([^`]+)` there/.exec(m[1]);
      if (head?.[2]) out.push({ doc, line: head[2], kind: 'snippet', cwd: '.' });
      if (head) out.push({ doc, line: head[4], kind: 'snippet', cwd: head[3], snippet: { file: head[1], code: m[1] } });
    }
    const prose = text.replace(/```[\s\S]*?```/g, '');
    for (const m of prose.matchAll(/`([^`\n]+)`/g)) {
      if (COMMAND_SPAN.test(m[1])) out.push({ doc, line: m[1].trim(), kind: 'span', cwd: cwdOf(m[1]) });
    }
  }
  return out;
}

const PACKAGES = () => readdirSync(join(ROOT, 'packages')).filter((p) => existsSync(join(ROOT, 'packages', p, 'package.json')));
const VITEST_LINE = /^(?:[A-Z_]+=\S+ )*(?:pnpm|npx) vitest run /;
const EXAMPLE_DEFAULT =
  "the default run trains every stage for every seed, share and recipe (the Parrot example: ~4 min on a 2-core machine; the others likewise), over this step's CI budget; the README's short `pnpm example:parrot -- --backend wasm --steps 20 --seeds 1` runs the same script here, and each example's pipeline runs in smoke mode in `pnpm test`";

/**
 * The reviewed classification, first match wins. `match` is tested against the whole line.
 * `run` lines: `budget` seconds (killed after), `writes` (paths relative to the root, removed afterwards
 * unless present before), optional `cwd` overriding the document's, optional `snippetFrom`
 * ({ doc, block }: write the first ```ts/```js block of `doc` matching `block` as `file`).
 */
export const RULES = [
  // --- run as written ---
  { match: /^pnpm build$/, action: 'run', budget: 300 },
  // A short example run (`--smoke`, or at most 49 steps): the README's `pnpm example:parrot -- --backend wasm --steps 20 --seeds 1`.
  {
    match: /^pnpm example:(?:parrot|wings|vpgc) -- (?=.*(?:--smoke\b|--steps [1-4]?\d\b))(?!.*--out)/,
    action: 'run',
    budget: 240,
    writes: ['runs/parrot-multilingual', 'runs/wings-text-retention', 'runs/vpgc-demonstrative'],
  },
  { match: /^MLLM_FAULT_SEED=\d+ pnpm vitest run packages\/train\/src\/checkpoint-faults\.test\.ts --project cpu$/, action: 'run', budget: 150 },
  { match: /^pnpm vitest run packages\/train\/src\/checkpoint\.test\.ts --project cpu$/, action: 'run', budget: 90 },
  { match: /^pnpm docs:api$/, action: 'run', budget: 120, writes: ['docs/api'] },
  { match: /^pnpm install$/, action: 'run', budget: 180 },
  { match: /^node \S+\.mjs$/, when: (c) => c.snippet !== undefined, action: 'run', budget: 120 },
  {
    match: /^(?:VK_ICD_FILENAMES=\S+ )?MLLM_BACKEND=(?:wasm|webgpu) node app\.mjs$/,
    action: 'run',
    budget: 120,
    cwd: 'packages/core',
    snippetFrom: { file: 'app.mjs', doc: 'docs/backends.md', block: /describeBackendChoice\(choice\)/ },
  },
  { match: /^node scripts\/doc-commands\.mjs --(?:list|check)$/, action: 'run', budget: 60 },
  // `lint` depends on `build` in turbo.json, for every workspace package: the browser demo's build writes these.
  { match: /^pnpm lint$/, action: 'run', budget: 180, writes: ['examples/browser-demo/out', 'examples/browser-demo/dist', 'examples/browser-demo/.turbo'] },
  // A usage line with optional parts in brackets runs without them (the defaults).
  { match: /^pnpm --filter @mllm-example\/browser-demo checkpoint(?: \[[^\]]*\])*$/, action: 'run', template: true, budget: 120, writes: ['examples/browser-demo/out'] },
  { match: /^pnpm --filter @mllm-example\/browser-demo build$/, action: 'run', budget: 180, writes: ['examples/browser-demo/out', 'examples/browser-demo/dist'] },
  // --- already run by CI ---
  { match: /^(?:bash scripts\/setup\.sh && )?pnpm test$/, action: 'ci', step: 'pnpm test', reason: '.ci/run runs `bash scripts/setup.sh && pnpm test` first' },
  { match: /^pnpm (?:release:dry|test:consumer)(?: && pnpm test:consumer)?$/, action: 'ci', step: 'pnpm release:dry', reason: '.ci/run runs `pnpm release:dry` then `pnpm test:consumer`' },
  { match: /^pnpm typecheck$/, action: 'ci', step: 'pnpm typecheck', reason: '.ci/run runs `pnpm typecheck` after `pnpm test` (tsc over every package, example and test file)' },
  { match: /^pnpm pack$/, action: 'ci', step: 'pnpm release:dry', reason: 'named in prose: `pnpm release:dry` packs every package with `pnpm pack`' },
  {
    match: VITEST_LINE,
    unless: /MLLM_FAULT_SEED/,
    action: 'ci',
    step: 'pnpm test',
    reason: 'these test files on these projects are a subset of what `pnpm test` runs in .ci/run; the parse check checks the paths and project names',
  },
  { match: /^cd \.\.\/\.\. && pnpm vitest run --project cpu examples\/browser-demo$/, action: 'ci', step: 'pnpm test', reason: 'the browser-demo tests on cpu are a subset of `pnpm test`; the parse check checks that `cd ../..` from examples/browser-demo reaches the root' },
  { match: /^bash scripts\/setup\.sh && pnpm example:parrot$/, action: 'skip', reason: `setup runs in .ci/run; ${EXAMPLE_DEFAULT}` },
  // --- already run as written by a test ---
  { match: /^(?:npx )?mllm (?:run|--help)\b/, action: 'test', by: 'packages/pretrained/src/docs-commands.test.ts', reason: 'runs every `mllm` line of the @mllm/pretrained README and docs/pretrained.md (`npx mllm` as `mllm`) in a directory holding the checkpoint, vision tower, tokenizer directory and images it names' },
  { match: /^huggingface-cli download /, action: 'skip', reason: "downloads the authors' released weights from the Hugging Face Hub (gigabytes, network); the loaders' fixture tests read the same layouts" },
  { match: /^git clone https:\/\/github\.com\//, action: 'skip', reason: "clones a reference repository from GitHub (network); the clone only supplies the authors' files the loaders read" },
  { match: /^mllm-eval --help$/, action: 'test', by: 'scripts/consumer-test.mjs', reason: 'the consumer test runs the installed bin with --help' },
  { match: /^mllm-eval /, action: 'test', by: 'packages/eval/src/docs-commands.test.ts', reason: 'runs every `mllm-eval` line of the eval README and docs/eval.md in a directory holding the files it names' },
  {
    match: /^npm install @mllm\//,
    when: (c) => /^packages\/[^/]+\/README\.md$/.test(c.doc),
    action: 'test',
    by: 'scripts/consumer-test.mjs',
    reason: "the consumer test installs each package README's install line, as written, in an empty project (the @mllm names swapped for the tarballs)",
  },
  // --- cannot run in CI ---
  { match: /^(?:CI=true )?bash \.ci\/run$/, action: 'skip', reason: 'the CI entry point itself: this script is its last step, so running it here would recurse' },
  { match: /^npm install @tensorflow\/tfjs-node-gpu$/, action: 'skip', reason: 'downloads a CUDA build of libtensorflow from outside the npm registry at install time (docs/backends.md)' },
  {
    match: /^npm install (?:(?:@tensorflow\/tfjs-backend-(?:wasm|webgpu)|webgpu)(?:@[\d.]+)? ?)+$/,
    action: 'skip',
    reason: "adds an optional backend to the reader's project from the registry; the consumer test installs @tensorflow/tfjs-backend-wasm@4.22.0 into its project, and the tests run wasm and webgpu from the same versions (root devDependencies)",
  },
  {
    match: /^npm install /,
    action: 'skip',
    reason: 'installs from the npm registry, where the @mllm versions of this checkout are not published yet; doc-commands.test.ts checks that the page installs a backend and every package its code imports, and the consumer test installs the package READMEs\' lines from tarballs',
  },
  { match: /^npm install$/, action: 'skip', reason: 'prose naming the command ("the `npm install` to run"), not a command line' },
  { match: /^npm ls /, action: 'skip', reason: "a diagnostic for the reader's own project (a duplicated @mllm/core); the workspace has no such tree" },
  { match: /^(?:NPM_TOKEN=\S+ )?pnpm release$/, action: 'skip', reason: 'publishes to npm; its checks run in `pnpm release:dry` (.ci/run)' },
  { match: /^pnpm version-packages$/, action: 'skip', reason: 'releasing: bumps versions and deletes the changesets (rewrites the checkout)' },
  { match: /^git (?:commit|push) /, action: 'skip', reason: 'releasing: commits and pushes tags' },
  { match: /^pnpm changeset(?: status)?$/, action: 'skip', reason: '`pnpm changeset` asks questions interactively; `changeset status` compares a branch with main, meaningless in a clone of main' },
  { match: /^(?:MLLM_DEMO_CHECKPOINT=\S+ )?pnpm --filter @mllm-example\/browser-demo dev$/, action: 'skip', reason: 'starts the Vite dev server, which runs until stopped; the demo tests build and load the page in chromium' },
  { match: /^pnpm example:parrot -- --budget full$/, action: 'skip', reason: 'the full budget takes up to an hour (28 min measured); its flags are parse-checked and the smoke test runs the same stages' },
  { match: /^pnpm example:parrot -- --backend wasm --out \S+$/, action: 'skip', reason: `a second default run into a fresh cache (the determinism check the page reports); ${EXAMPLE_DEFAULT}` },
  { match: /^(?:bash scripts\/setup\.sh && )?pnpm example:(?:parrot|wings|vpgc)$/, action: 'skip', reason: EXAMPLE_DEFAULT },
  {
    match: /^pnpm --filter @mllm-example\/(?:wings-text-retention|vpgc-demonstrative) start /,
    action: 'skip',
    reason: 'several seeds of the full training (hundreds of steps each) take many minutes on 2 cores; the flags are parse-checked and the pipeline runs in smoke mode in `pnpm test`',
  },
  { match: /^pnpm bench\b/, action: 'skip', reason: 'the benchmark suite takes ≥ 4 min (with --memory-7b a 1.2 GiB model); the flags are parse-checked against bench/run.ts' },
  { match: /^npx tsx (?:--tsconfig \S+ )?(?:packages\/\w+\/)?bench\//, action: 'skip', reason: 'a benchmark (minutes of timed repeats; bench/llava-real.ts a 2.3 GB model); file and flags are parse-checked' },
];

/** The rule a command line falls under (first match), or undefined. */
export function ruleFor(command) {
  return RULES.find((r) => r.match.test(command.line) && !(r.unless && r.unless.test(command.line)) && (!r.when || r.when(command)));
}

const PNPM_BUILTINS = new Set(['install', 'add', 'exec', 'dlx', 'pack', 'vitest', 'changeset', 'tsx']);

function workspacePackages() {
  const found = new Map();
  for (const group of ['packages', 'examples']) {
    for (const name of readdirSync(join(ROOT, group))) {
      const file = join(ROOT, group, name, 'package.json');
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, 'utf8'));
        found.set(pkg.name, { dir: join(group, name), scripts: pkg.scripts ?? {} });
      }
    }
  }
  return found;
}

/** Flags (`--x`) of argv that the given source files never mention (as `--x`, `'x'` or `"x"`). */
function unknownFlags(argv, sources) {
  const text = sources.map((s) => readFileSync(join(ROOT, s), 'utf8')).join('\n');
  return argv
    .map((a) => a.replace(/^\[/, '').replace(/[\]=].*$/, ''))
    .filter((a) => /^--[a-z]/.test(a))
    .filter((a) => ![a, `'${a.slice(2)}'`, `"${a.slice(2)}"`].some((form) => new RegExp(`${form.replace(/[-]/g, '\\-')}(?![\\w-])`).test(text)));
}

/**
 * Problems with a command line without running it (empty when it parses): see the file comment.
 * Template parts in brackets (`[--out DIR]`) are checked like the rest.
 */
export function parseProblems(command) {
  const problems = [];
  const rootScripts = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts;
  const packages = workspacePackages();
  let cwd = command.cwd ?? '.';
  for (const part of command.line.split(/&&|;/).map((p) => p.trim())) {
    const words = part.split(/\s+/).filter((w) => !/^[A-Z_][A-Z0-9_]*=/.test(w));
    const [tool, ...argv] = words;
    const at = (p) => join(ROOT, cwd, p);
    if (tool === 'cd') {
      cwd = relative(ROOT, resolve(ROOT, cwd, argv[0])) || '.';
      if (!existsSync(at('.'))) problems.push(`cd ${argv[0]}: no such directory`);
      continue;
    }
    const vitestArgs = tool === 'npx' && argv[0] === 'vitest' ? argv.slice(1) : tool === 'pnpm' && argv[0] === 'vitest' ? argv.slice(1) : null;
    if (vitestArgs) {
      if (cwd !== '.') problems.push(`vitest runs from the root, not ${cwd}`);
      const config = readFileSync(join(ROOT, 'vitest.config.ts'), 'utf8');
      for (let i = 1; i < vitestArgs.length; i++) {
        const a = vitestArgs[i];
        if (a === '--project') {
          const name = vitestArgs[++i];
          if (!new RegExp(`backendProject\\('${name}'|name: '${name}'`).test(config)) problems.push(`--project ${name}: no such vitest project`);
        } else if (a.startsWith('--')) problems.push(`vitest flag ${a} not checked by this script`);
        else if (!existsSync(join(ROOT, a))) problems.push(`${a}: no such test path`);
      }
      continue;
    }
    if (tool === 'pnpm') {
      if (argv[0] === '--filter') {
        const pkg = packages.get(argv[1]);
        if (!pkg) problems.push(`--filter ${argv[1]}: no workspace package of that name`);
        else if (!pkg.scripts[argv[2]]) problems.push(`${argv[1]} has no script '${argv[2]}'`);
        else problems.push(...flagProblems(argv[1], argv.slice(3), pkg, argv[2]));
        continue;
      }
      if (PNPM_BUILTINS.has(argv[0])) continue;
      // pnpm runs the script of the package the command starts in.
      const scripts = cwd === '.' ? rootScripts : JSON.parse(readFileSync(at('package.json'), 'utf8')).scripts ?? {};
      if (typeof scripts[argv[0]] !== 'string') problems.push(`pnpm ${argv[0]}: no script of that name in ${cwd === '.' ? 'the root' : cwd}/package.json`);
      else if (cwd !== '.') continue;
      else if (argv[0] === 'bench') problems.push(...unknownFlags(argv.slice(1), ['bench/run.ts']).map((f) => `pnpm bench: bench/run.ts reads no flag ${f}`));
      else if (argv[0].startsWith('example:')) {
        const name = /--filter (\S+) start/.exec(rootScripts[argv[0]])?.[1];
        problems.push(...flagProblems(name, argv.slice(1), packages.get(name)));
      }
      continue;
    }
    if (tool === 'npx' && argv[0] === 'tsx') {
      const files = argv.slice(1).filter((a) => /\.(?:ts|json|mjs)$/.test(a));
      for (const f of files) if (!existsSync(at(f))) problems.push(`${f}: no such file`);
      const script = files.find((f) => f.endsWith('.ts'));
      if (script && existsSync(at(script))) problems.push(...unknownFlags(argv.slice(1).filter((a) => a !== '--tsconfig'), [join(cwd, script)]).map((f) => `${script} reads no flag ${f}`));
      continue;
    }
    if (tool === 'node' && !command.snippet && !ruleFor(command)?.snippetFrom && !existsSync(at(argv[0]))) problems.push(`node ${argv[0]}: no such file`);
    if (tool === 'bash' && !existsSync(at(argv[0]))) problems.push(`bash ${argv[0]}: no such file`);
    if (tool === 'mllm-eval') {
      problems.push(...unknownFlags(argv, ['packages/eval/src/cli-main.ts']).map((f) => `mllm-eval reads no flag ${f}`));
    }
  }
  return problems;
}

/**
 * Flags given to a workspace package's script: they must appear in the .ts file the script runs
 * (the last one it names) or, for the examples, in @mllm-example/common, which parses the shared ones.
 */
function flagProblems(name, argv, pkg, script = 'start') {
  if (!pkg || !name?.startsWith('@mllm-example/')) return [];
  const file = [...(pkg.scripts[script] ?? '').matchAll(/(\S+\.ts)\b/g)].at(-1)?.[1];
  if (!file) return argv.some((a) => a.startsWith('--') && a !== '--') ? [`${name} ${script}: runs no .ts file to read its flags from`] : [];
  const sources = [join(pkg.dir, file), 'examples/common/src/cli-flags.ts'];
  return unknownFlags(argv, sources).map((f) => `${name}: ${file} reads no flag ${f}`);
}

/** Every command with its rule and parse problems; lines no rule matches have `rule: undefined`. */
export function inventory(root = ROOT) {
  const seen = new Set();
  const list = [];
  for (const c of collectCommands(root)) {
    const key = `${c.cwd}\0${c.line}\0${c.snippet?.code ?? ''}`;
    const rule = ruleFor(c);
    const item = { ...c, rule, problems: parseProblems(c) };
    if (rule?.action === 'ci' && !readFileSync(join(root, '.ci/run'), 'utf8').includes(rule.step)) item.problems.push(`.ci/run has no step '${rule.step}'`);
    if (rule?.action === 'test' && !existsSync(join(root, rule.by))) item.problems.push(`${rule.by}: no such test`);
    if (rule?.action === 'run' && seen.has(key)) item.duplicate = true;
    seen.add(key);
    list.push(item);
  }
  return list;
}

/** Untracked and ignored paths (an ignored folder as one entry, as git lists it). */
function untracked() {
  const r = spawnSync('git', ['status', '--porcelain', '--ignored', '--untracked-files=normal'], { cwd: ROOT, encoding: 'utf8' });
  return new Set(r.stdout.split('\n').filter((l) => l.startsWith('?? ') || l.startsWith('!! ')).map((l) => l.slice(3)));
}

function snippetCode(rule) {
  const text = readFileSync(join(ROOT, rule.snippetFrom.doc), 'utf8');
  const block = [...text.matchAll(/```(?:ts|js|mjs)\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => rule.snippetFrom.block.test(b));
  if (!block) throw new Error(`${rule.snippetFrom.doc}: no code block matching ${rule.snippetFrom.block}`);
  return block;
}

/** Runs one line with bash in its directory; resolves { code, seconds, output, timedOut }. */
function execute(line, cwd, budget) {
  return new Promise((done) => {
    const started = Date.now();
    const child = spawn('bash', ['-c', line], { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
    let output = '';
    const take = (d) => {
      output += d;
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, budget * 1000);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, seconds: (Date.now() - started) / 1000, output, timedOut });
    });
  });
}

async function main() {
  const args = process.argv.slice(2);
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
  const list = inventory();
  if (args.includes('--list')) {
    for (const c of list) console.log(`${(c.rule?.action ?? 'UNCLASSIFIED').padEnd(5)} ${c.doc}: ${c.line}${c.rule?.reason ? `  — ${c.rule.reason}` : ''}`);
    return 0;
  }
  let failed = 0;
  for (const c of list) {
    if (!c.rule) {
      failed++;
      console.error(`UNCLASSIFIED ${c.doc}: ${c.line}\n  add a rule for it to scripts/doc-commands.mjs (run it, or say why it cannot run)`);
    }
    for (const p of c.problems) {
      failed++;
      console.error(`PARSE ${c.doc}: ${c.line}\n  ${p}`);
    }
  }
  const counts = {};
  for (const c of list) counts[c.rule?.action ?? 'unclassified'] = (counts[c.rule?.action ?? 'unclassified'] ?? 0) + 1;
  console.log(`doc-commands: ${list.length} command lines in ${docFiles().length} documents: ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ')}`);
  if (args.includes('--check') || failed) return failed ? 1 : 0;

  const started = Date.now();
  for (const c of list) {
    if (c.rule.action !== 'run' || c.duplicate || (only && !c.line.includes(only))) continue;
    const cwd = join(ROOT, c.rule.cwd ?? c.cwd);
    const writes = [...(c.rule.writes ?? [])];
    const snippet = c.snippet ?? (c.rule.snippetFrom ? { file: c.rule.snippetFrom.file, code: snippetCode(c.rule) } : undefined);
    if (snippet) writes.push(relative(ROOT, join(cwd, snippet.file)));
    const present = new Set(writes.filter((w) => existsSync(join(ROOT, w))));
    if (snippet) {
      if (present.has(writes.at(-1))) throw new Error(`${writes.at(-1)} exists: the snippet would overwrite it`);
      writeFileSync(join(cwd, snippet.file), snippet.code);
    }
    const before = untracked();
    const line = c.rule.template ? c.line.replace(/\s*\[[^\]]*\]/g, '') : c.line;
    const r = await execute(line, cwd, c.rule.budget);
    for (const w of writes) if (!present.has(w)) rmSync(join(ROOT, w), { recursive: true, force: true });
    // Whatever is new after its declared outputs are gone was written without being declared.
    const stray = [...untracked()].filter((f) => !before.has(f));
    const ok = r.code === 0 && !r.timedOut && stray.length === 0;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${r.seconds.toFixed(1).padStart(6)} s  ${c.doc}: ${c.line}${c.rule.cwd ?? c.cwd !== '.' ? `  (in ${c.rule.cwd ?? c.cwd})` : ''}`);
    if (!ok) {
      failed++;
      if (r.timedOut) console.log(`  over its budget of ${c.rule.budget} s: killed`);
      if (stray.length) console.log(`  left files it was not expected to write: ${stray.join(', ')}`);
      console.log(r.output.split('\n').slice(-40).map((l) => `  | ${l}`).join('\n'));
    }
  }
  console.log(`doc-commands: ${failed ? `${failed} failed` : 'all passed'} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return failed ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
