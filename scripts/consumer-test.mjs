#!/usr/bin/env node
/**
 * Consumer install test: what a user gets from the registry, checked before publishing.
 *
 *   1. build the packages (turbo; skip with --skip-build),
 *   2. `pnpm pack` every publishable package (so `workspace:*` becomes a real version),
 *   3. create a fresh npm project in a temp dir OUTSIDE the workspace and `npm install` the tarballs,
 *      the tfjs peers (@tensorflow/tfjs-core, -layers, -backend-cpu, -backend-wasm 4.22.0) and typescript 5.9.3,
 *   4. run tests/consumer/esm.mjs (ESM named imports), tests/consumer/cjs.cjs (require) — both run
 *      tests/consumer/checks.cjs: forward passes with output shapes, no leaks, gradients, and the
 *      export round trip to the reference PyTorch layout for Parrot, Wings and VPG-C —
 *   5. run the `mllm-eval` and `mllm` binaries (`--help`, `mllm run --help`);
 *   6. type-check tests/consumer/typed.ts with tsc (NodeNext, strict, skipLibCheck off) and run its
 *      output; type-check it again with the legacy `node10` resolution + CommonJS.
 *
 * Usage: node scripts/consumer-test.mjs [--skip-build] [--keep] [--tarballs <dir>]
 *   --tarballs <dir>  install the .tgz files already in <dir> (e.g. from `release:dry --out`) instead of packing
 *   --keep            leave the temp project in place (its path is printed)
 * Exit code 0 = every step passed.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listPublishablePackages, packPackages, run, step, tarballName, timings } from './release-lib.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

const PEERS = [
  '@tensorflow/tfjs-core@4.22.0',
  '@tensorflow/tfjs-layers@4.22.0',
  '@tensorflow/tfjs-backend-cpu@4.22.0',
  '@tensorflow/tfjs-backend-wasm@4.22.0',
  'typescript@5.9.3',
  '@types/node@20',
];
/** tfjs 4.22's own declarations do not compile with skipLibCheck off (tfjs-layers under strict, `Long`). */
const UPSTREAM_DECLARATION_ERRORS = /^node_modules\/@tensorflow\//;
const FIXTURES = ['checks.cjs', 'esm.mjs', 'cjs.cjs', 'typed.ts', 'tsconfig.json'];

const work = mkdtempSync(join(tmpdir(), 'mllm-consumer-'));
if (!relative(root, work).startsWith('..')) throw new Error(`the consumer project must be outside the workspace, got ${work}`);
let ok = false;
try {
  const packages = listPublishablePackages(root);
  if (!flag('--skip-build') && !option('--tarballs')) {
    step('build', () => run('pnpm', ['exec', 'turbo', 'run', 'build', '--filter=./packages/*'], { cwd: root }));
  }
  let tarballDir = option('--tarballs');
  if (tarballDir) tarballDir = resolve(tarballDir);
  else {
    tarballDir = join(work, 'tarballs');
    step('pnpm pack', () => packPackages(packages, tarballDir));
  }
  const tarballs = readdirSync(tarballDir).filter((f) => f.endsWith('.tgz')).map((f) => join(tarballDir, f));
  for (const p of packages) {
    const stem = p.name.replace(/^@/, '').replace('/', '-');
    if (!tarballs.some((t) => t.endsWith(`/${stem}-${p.version}.tgz`))) throw new Error(`no tarball for ${p.name}@${p.version} in ${tarballDir}`);
  }

  const core = packages.find((p) => p.name === '@mllm/core');
  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'mllm-consumer-test', version: '0.0.0', private: true, type: 'module' }, null, 2),
  );
  for (const f of FIXTURES) copyFileSync(join(root, 'tests/consumer', f), join(app, f));
  const writeJson = (file, value) => writeFileSync(join(app, file), JSON.stringify(value, null, 2));
  writeJson('tsconfig.libcheck.json', { extends: './tsconfig.json', compilerOptions: { skipLibCheck: false, noEmit: true } });
  writeJson('tsconfig.node10.json', {
    extends: './tsconfig.json',
    compilerOptions: { module: 'CommonJS', moduleResolution: 'node10', noEmit: true, ignoreDeprecations: '5.0' },
  });

  step('npm install (tarballs + tfjs peers + typescript)', () =>
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...tarballs, ...PEERS], { cwd: app }),
  );
  // The installed @mllm packages must be the tarballs (never a registry package of the same name).
  for (const p of packages) {
    const installed = JSON.parse(readFileSync(join(app, 'node_modules', p.name, 'package.json'), 'utf8'));
    if (installed.version !== p.version) throw new Error(`${p.name}: installed ${installed.version}, packed ${p.version}`);
    if (existsSync(join(app, 'node_modules', p.name, 'src'))) throw new Error(`${p.name}: the tarball contains src/`);
  }
  const nested = spawnSync('npm', ['ls', '--all', '--parseable'], { cwd: app, encoding: 'utf8' }).stdout ?? '';
  const duplicates = nested.split('\n').filter((line) => /node_modules\/@mllm\/[^/]+\/node_modules\/@mllm\//.test(line));
  if (duplicates.length) throw new Error(`nested copies of @mllm packages (version mismatch between tarballs):\n${duplicates.join('\n')}`);

  step('ESM: node esm.mjs', () => run('node', ['esm.mjs'], { cwd: app }));
  step('CommonJS: node cjs.cjs', () => run('node', ['cjs.cjs'], { cwd: app }));
  step('CLI: mllm-eval --help (the bin of @mllm/eval)', () => {
    const help = run(join(app, 'node_modules/.bin/mllm-eval'), ['--help'], { cwd: app, capture: true });
    if (!help.includes('--model')) throw new Error(`mllm-eval --help printed no usage:\n${help}`);
  });
  step('CLI: mllm --help and mllm run --help (the bin of @mllm/pretrained)', () => {
    const help = run(join(app, 'node_modules/.bin/mllm'), ['--help'], { cwd: app, capture: true });
    if (!help.includes('mllm run')) throw new Error(`mllm --help printed no usage:\n${help}`);
    const runHelp = run(join(app, 'node_modules/.bin/mllm'), ['run', '--help'], { cwd: app, capture: true });
    if (!runHelp.includes('--model <dir>')) throw new Error(`mllm run --help printed no usage:\n${runHelp}`);
  });
  step('TypeScript: tsc (NodeNext, strict) + run', () => {
    run(join(app, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: app });
    run('node', ['out/typed.js'], { cwd: app });
  });
  step('TypeScript: tsc --noEmit with skipLibCheck off (our .d.ts files checked)', () => {
    const result = spawnSync(join(app, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.libcheck.json'], { cwd: app, encoding: 'utf8' });
    const errors = (result.stdout ?? '').split('\n').filter((line) => /^\S.*: error TS\d+/.test(line));
    const ours = errors.filter((line) => !UPSTREAM_DECLARATION_ERRORS.test(line));
    console.log(`${errors.length - ours.length} errors inside @tensorflow's own declarations (upstream, ignored), ${ours.length} elsewhere`);
    if (ours.length) throw new Error(`declaration errors:\n${ours.join('\n')}`);
    if (result.status !== 0 && errors.length === 0) throw new Error(`tsc failed:\n${result.stdout}\n${result.stderr}`);
  });
  step('TypeScript: tsc --noEmit (node10 resolution, CommonJS)', () =>
    run(join(app, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.node10.json'], { cwd: app }),
  );
  step('one @mllm/core per process: the ESM and the CommonJS build loaded together are reported', () => {
    // esm.mjs and cjs.cjs each saw one copy (they assert it); importing and requiring core in one
    // process loads two (dual-package hazard), and the registry says so once, on stderr.
    writeFileSync(
      join(app, 'dual.mjs'),
      [
        `import { createRequire } from 'node:module';`,
        `import * as esm from '@mllm/core';`,
        `const cjs = createRequire(import.meta.url)('@mllm/core');`,
        `if (esm.loadedCoreCopies().length !== 2 || cjs.loadedCoreCopies().length !== 2) throw new Error('expected two registered copies');`,
      ].join('\n'),
    );
    const stderr = runExpectingStatus('node', ['dual.mjs'], app, 0);
    expectMessage(stderr, [
      '@mllm/core is loaded 2 times in this process:',
      `@mllm/core ${core.version} from ${join(app, 'node_modules/@mllm/core/dist/index.js')}`,
      `@mllm/core ${core.version} from ${join(app, 'node_modules/@mllm/core/dist/index.cjs')}`,
      'setSeed',
      'the ESM and the CommonJS build of one install',
    ]);
    if (stderr.split('is loaded 2 times').length !== 2) throw new Error(`the two-copies warning was printed more than once:\n${stderr}`);
  });
  // Mismatched versions: @mllm/core packed again at the next major and at the next 0.x minor (the
  // version inlined in its bundles patched too) next to the module packages of this release.
  const parrot = packages.find((p) => p.name === '@mllm/parrot');
  const parrotTarball = tarballs.find((t) => t.endsWith(`/${tarballName(parrot)}`));
  const coreTarball = tarballs.find((t) => t.endsWith(`/${tarballName(core)}`));
  const [major, minor] = core.version.split('.').map(Number);
  const nextMajor = `${major + 1}.0.0`;
  const nextLine = major === 0 ? `0.${minor + 1}.0` : `${major + 1}.0.0`;
  step(`mismatch: @mllm/parrot ${parrot.version} next to @mllm/core ${nextMajor} → npm refuses (ERESOLVE, peer range)`, () => {
    const dir = emptyProject('mismatch-major');
    const bumped = repackCoreAt(coreTarball, core.version, nextMajor, join(work, 'bumped-major'));
    const output = runExpectingStatus('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', parrotTarball, bumped, ...PEERS.slice(0, 2)], dir, 'nonzero');
    expectMessage(output, ['ERESOLVE', `@mllm/core@${nextMajor}`, `peer @mllm/core@"${parrot.manifest.peerDependencies['@mllm/core'].replace(/^workspace:/, '')}" from @mllm/parrot@${parrot.version}`]);
  });
  step(`mismatch: @mllm/parrot ${parrot.version} next to @mllm/core ${nextLine} → one copy, and importing @mllm/parrot throws naming both`, () => {
    const dir = emptyProject('mismatch-minor');
    const bumped = repackCoreAt(coreTarball, core.version, nextLine, join(work, 'bumped-line'));
    // 0.x: npm's peer range spans every 0.x (see docs/releasing.md), so the install goes through
    // (for 1.x and later the range is ^, and npm refuses as above); the check at import does not.
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...(major === 0 ? [] : ['--legacy-peer-deps']), parrotTarball, bumped, ...PEERS.slice(0, 2)], { cwd: dir });
    if (existsSync(join(dir, 'node_modules/@mllm/parrot/node_modules/@mllm/core'))) throw new Error('npm installed a second @mllm/core under @mllm/parrot');
    const expected = [`@mllm/parrot ${parrot.version} needs @mllm/core ^${parrot.version}, but the @mllm/core it imported is ${nextLine}`, `npm install @mllm/parrot@${nextLine} @mllm/core@${nextLine}`];
    expectMessage(runExpectingStatus('node', ['--input-type=module', '-e', `await import('@mllm/parrot')`], dir, 'nonzero'), expected);
    expectMessage(runExpectingStatus('node', ['-e', `require('@mllm/parrot')`], dir, 'nonzero'), expected);
    // Two installs in one process (a library with its own nested core): the warning names both.
    const nested = join(dir, 'lib/node_modules/@mllm');
    mkdirSync(nested, { recursive: true });
    run('tar', ['-xzf', coreTarball, '-C', nested]);
    run('mv', [join(nested, 'package'), join(nested, 'core')]);
    writeFileSync(join(dir, 'two.mjs'), `import '@mllm/core';\nawait import('./lib/node_modules/@mllm/core/dist/index.js');\n`);
    expectMessage(runExpectingStatus('node', ['two.mjs'], dir, 0), [
      '@mllm/core is loaded 2 times in this process:',
      `@mllm/core ${nextLine} from ${join(dir, 'node_modules/@mllm/core/dist/index.js')}`,
      `@mllm/core ${core.version} from ${join(nested, 'core/dist/index.js')}`,
      'npm dedupe',
    ]);
  });
  // Each package README's install line, exactly as written, in its own empty project (the @mllm names
  // swapped for the tarballs): it must install everything the README's code imports and a backend
  // that `initBackend('auto')` can start.
  for (const p of packages) {
    const readme = readFileSync(join(p.dir, 'README.md'), 'utf8');
    const line = readmeInstallLine(readme);
    if (line === undefined) {
      throw new Error(`${p.name}: README.md shows no \`npm install\` line`);
    }
    step(`README install line of ${p.name} in an empty project`, () => {
      const dir = join(work, `readme-${p.name.replace(/^@mllm\//, '')}`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'readme-install', version: '0.0.0', private: true, type: 'module' }));
      const specs = line.map((spec) => {
        const owned = packages.find((q) => q.name === spec);
        if (!owned) return spec;
        return tarballs.find((t) => t.endsWith(`/${tarballName(owned)}`));
      });
      run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...specs], { cwd: dir });
      const imports = [...readmeImports(readme)];
      // With @mllm/core installed (a dependency of the module packages), start 'auto' as a user would;
      // @mllm/eval's line installs no core (its CLI registers the backend package it names), so there
      // the backend packages of the line itself must give tfjs a backend.
      const withCore = existsSync(join(dir, 'node_modules/@mllm/core'));
      const backends = line.filter((spec) => spec.startsWith('@tensorflow/tfjs-backend-'));
      const probe = [
        ...imports.map((name, i) => `import * as m${i} from '${name}';`),
        ...(withCore
          ? [`import { initBackend } from '@mllm/core';`, `const backend = (await initBackend('auto')).backend;`]
          : [`import * as tf from '@tensorflow/tfjs-core';`, ...backends.map((b) => `import '${b}';`), `await tf.ready();`, `const backend = tf.getBackend();`]),
        `if (!backend) throw new Error('no backend started');`,
        `console.log('imports ${imports.join(', ')}; backend:', backend);`,
      ].join('\n');
      writeFileSync(join(dir, 'probe.mjs'), probe);
      run('node', ['probe.mjs'], { cwd: dir });
    });
  }
  ok = true;
} finally {
  console.log('\nconsumer test timings:');
  for (const [name, seconds] of timings) console.log(`  ${seconds.toFixed(1).padStart(6)} s  ${name}`);
  if (flag('--keep') || !ok) console.log(`consumer project kept at ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
console.log(ok ? 'consumer test: PASSED' : 'consumer test: FAILED');
process.exitCode = ok ? 0 : 1;

/** The first `npm install …` line of a README's ```sh blocks, as its list of package specs. */
function readmeInstallLine(text) {
  for (const block of text.matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)) {
    for (const raw of block[1].replace(/\\\n/g, ' ').split('\n')) {
      const line = raw.replace(/#.*$/, '').trim();
      if (line.startsWith('npm install ')) return line.split(/\s+/).slice(2);
    }
  }
  return undefined;
}

/** Bare package names the README's ```ts / ```js blocks import (node: builtins left out). */
function readmeImports(text) {
  const names = new Set();
  for (const block of text.matchAll(/```(?:ts|js|mjs|typescript)\n([\s\S]*?)```/g)) {
    for (const m of block[1].matchAll(/(?:from|import)\s+'([^'.][^']*)'/g)) {
      if (m[1].startsWith('node:')) continue;
      const parts = m[1].split('/');
      names.add(m[1].startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]);
    }
  }
  return names;
}

/** A fresh npm project `<work>/<name>`; returns its directory. */
function emptyProject(name) {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, version: '0.0.0', private: true, type: 'module' }));
  return dir;
}

/** Runs a command expecting exit status `status` (a number, or 'nonzero'); returns stdout + stderr. */
function runExpectingStatus(command, commandArgs, cwd, status) {
  const result = spawnSync(command, commandArgs, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  const ok = status === 'nonzero' ? result.status !== 0 && result.status !== null : result.status === status;
  if (!ok) throw new Error(`${command} ${commandArgs.join(' ')} (in ${cwd}) exited with ${result.status}, expected ${status}:\n${output}`);
  return output;
}

/** Throws unless `output` contains every string of `expected`, showing the output. */
function expectMessage(output, expected) {
  const missing = expected.filter((text) => !output.includes(text));
  if (missing.length) throw new Error(`expected the message to contain:\n  ${missing.join('\n  ')}\ngot:\n${output}`);
  console.log(`message as expected:\n  ${output.trim().split('\n').slice(0, 8).join('\n  ')}`);
}

/**
 * The core tarball packed again at version `to`: package.json, and the version its bundles inline
 * (package-identity.ts: `var version = "<from>";`, exactly once in dist/index.js and dist/index.cjs).
 */
function repackCoreAt(tarball, from, to, destination) {
  mkdirSync(destination, { recursive: true });
  run('tar', ['-xzf', tarball, '-C', destination]);
  const manifestPath = join(destination, 'package/package.json');
  writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(readFileSync(manifestPath, 'utf8')), version: to }, null, 2));
  for (const file of ['dist/index.js', 'dist/index.cjs']) {
    const path = join(destination, 'package', file);
    const needle = `var version = ${JSON.stringify(from)};`;
    const parts = readFileSync(path, 'utf8').split(needle);
    if (parts.length !== 2) throw new Error(`${file} of @mllm/core should inline \`${needle}\` once, found it ${parts.length - 1} times`);
    writeFileSync(path, parts.join(`var version = ${JSON.stringify(to)};`));
  }
  const out = join(destination, `mllm-core-${to}.tgz`);
  run('tar', ['-czf', out, '-C', destination, 'package']);
  return out;
}
