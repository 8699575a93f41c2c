/**
 * Helpers shared by scripts/release.mjs and scripts/consumer-test.mjs: the publishable packages,
 * running commands (output streamed, failure = exception naming the command), timing steps,
 * `pnpm pack` into a directory and inspecting what a tarball will publish.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** `[name, seconds]` of every finished step, in order. */
export const timings = [];

/** Run `fn` as a named step, print its name and duration. */
export function step(name, fn) {
  console.log(`\n--- ${name}`);
  const start = performance.now();
  try {
    return fn();
  } finally {
    timings.push([name, (performance.now() - start) / 1000]);
  }
}

/** Run a command, inheriting stdio (or capturing with `capture: true`); throws on a non-zero exit. */
export function run(command, args, { cwd, capture = false, env } = {}) {
  const result = spawnSync(command, args, {
    cwd,
    env: env ?? process.env,
    stdio: capture ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw new Error(`${command} ${args.join(' ')} (in ${cwd}): ${result.error.message}`);
  if (result.status !== 0) {
    const output = capture ? `\n${result.stdout}\n${result.stderr}` : '';
    throw new Error(`${command} ${args.join(' ')} (in ${cwd}) exited with ${result.status}${output}`);
  }
  return capture ? result.stdout : '';
}

/** Every non-private package under packages/: `{ name, version, dir, manifest }`, sorted by name. */
export function listPublishablePackages(root) {
  const base = join(root, 'packages');
  return readdirSync(base)
    .map((entry) => join(base, entry))
    .filter((dir) => existsSync(join(dir, 'package.json')))
    .map((dir) => ({ dir, manifest: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) }))
    .filter(({ manifest }) => !manifest.private)
    .map(({ dir, manifest }) => ({ name: manifest.name, version: manifest.version, dir, manifest }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** The tarball name `pnpm pack` writes for a package. */
export function tarballName(pkg) {
  return `${pkg.name.replace(/^@/, '').replace('/', '-')}-${pkg.version}.tgz`;
}

/** `pnpm pack` every package into `destination` (rewrites `workspace:` ranges); returns the tarball paths. */
export function packPackages(packages, destination) {
  mkdirSync(destination, { recursive: true });
  return packages.map((pkg) => {
    run('pnpm', ['pack', '--pack-destination', destination], { cwd: pkg.dir, capture: true });
    const path = join(destination, tarballName(pkg));
    if (!existsSync(path)) throw new Error(`pnpm pack of ${pkg.name} did not write ${path}`);
    return path;
  });
}

/** File list of a tarball (paths without the leading `package/`). */
export function tarballFiles(tarball) {
  return run('tar', ['-tzf', tarball], { capture: true })
    .split('\n')
    .filter(Boolean)
    .map((line) => line.replace(/^package\//, ''));
}

/** The package.json inside a tarball. */
export function tarballManifest(tarball) {
  return JSON.parse(run('tar', ['-xzOf', tarball, 'package/package.json'], { capture: true }));
}

/**
 * What must hold for a packed tarball: no `workspace:` range left, every path named by
 * main/module/types/exports/bin present, README, CHANGELOG.md, LICENSE, the npm page's metadata
 * (description, license, engines, keywords), no sources/tests/maps to sources outside dist, and
 * `@mllm/core` only as a peer dependency of the other packages.
 * Returns a list of problems (empty = fine).
 */
export function checkTarball(pkg, tarball) {
  const problems = [];
  const files = new Set(tarballFiles(tarball));
  const manifest = tarballManifest(tarball);
  const text = JSON.stringify(manifest);
  if (text.includes('workspace:')) problems.push('a `workspace:` range is left in package.json');
  const targets = [];
  const collect = (value) => {
    if (typeof value === 'string') targets.push(value);
    else if (value && typeof value === 'object') Object.values(value).forEach(collect);
  };
  collect([manifest.main, manifest.module, manifest.types, manifest.exports, manifest.bin]);
  for (const target of targets) {
    if (target.includes('*')) continue;
    const path = target.replace(/^\.\//, '');
    if (!files.has(path)) problems.push(`${target} (named in package.json) is not in the tarball`);
  }
  if (!files.has('README.md')) problems.push('README.md is missing');
  if (!files.has('CHANGELOG.md')) problems.push('CHANGELOG.md is missing');
  if (!files.has('LICENSE')) problems.push('LICENSE is missing');
  for (const field of ['description', 'license', 'engines', 'keywords']) {
    const value = manifest[field];
    if (value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) problems.push(`package.json has no ${field}`);
  }
  for (const file of files) {
    if (/\.test\.[cm]?[jt]s$/.test(file) || file.startsWith('src/')) problems.push(`${file} should not be published`);
  }
  if (manifest.version !== pkg.version) problems.push(`version ${manifest.version} differs from ${pkg.version}`);
  // @mllm/core is a peer of every other @mllm package: a normal dependency would give each its own
  // copy (and its own setSeed / backend state) as soon as the versions drift (docs/releasing.md).
  if (pkg.name !== '@mllm/core') {
    for (const field of ['dependencies', 'optionalDependencies']) {
      if (manifest[field]?.['@mllm/core']) problems.push(`@mllm/core is in ${field}; it must be a peer dependency (one copy per project)`);
    }
    const range = manifest.peerDependencies?.['@mllm/core'];
    if (range === undefined) problems.push('@mllm/core is not in peerDependencies');
    else if (/^\d/.test(range)) problems.push(`the peer range of @mllm/core is the exact version ${range}: each core release would leave it and changesets would bump this package major (use a range, see docs/releasing.md)`);
  }
  return problems;
}

/**
 * Relative links in a package README (`[text](../../docs/x.md)`): they resolve in the repository but
 * not on the npm page, which has no repository URL to resolve them against. Returns `file: link` strings.
 */
export function relativeMarkdownLinks(files) {
  const found = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const match of text.matchAll(/\[[^\]]*\]\(([^)\s]+)\)/g)) {
      if (!/^[a-z][a-z0-9+.-]*:/i.test(match[1]) && !match[1].startsWith('#')) found.push(`${file}: ${match[1]}`);
    }
  }
  return found;
}

/**
 * Relative links in Markdown files (`[text](path)` / `[text](path#anchor)`) that point to no file.
 * URLs with a scheme and pure anchors are not checked. Returns `file: link` strings.
 */
export function brokenMarkdownLinks(files) {
  const broken = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const match of text.matchAll(/\[[^\]]*\]\(([^)\s]+)\)/g)) {
      const target = match[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
      const path = join(dirname(file), target.split('#')[0]);
      if (!existsSync(path)) broken.push(`${file}: ${target}`);
    }
  }
  return broken;
}
