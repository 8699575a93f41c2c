#!/usr/bin/env node
/**
 * Release flow for the @mllm packages (see docs/releasing.md).
 *
 *   pnpm release       build → checks → `changeset publish` (npm auth required; run `pnpm version-packages` first)
 *   pnpm release:dry   build → checks → `pnpm pack` every package into a temp dir (or --out <dir>); publishes nothing
 *
 * Checks, per publishable package (packages/*, not private):
 *   - `publint --strict`
 *   - `attw <tarball>` (@arethetypeswrong/cli, all resolution modes: node10, node16 CJS/ESM, bundler)
 *     on the tarball `pnpm pack` produced, i.e. exactly what will be published
 *   - relative links in docs/*.md and the package READMEs resolve
 *   - the tarball: no `workspace:` range left, every path named by main/module/types/exports/bin
 *     present, README.md, CHANGELOG.md and LICENSE present, description/license/engines/keywords set, no sources or tests,
 *     `@mllm/core` only as a peer dependency (a range, not an exact version) of the other packages
 * and once: `changeset status` (the fixed group bumps every @mllm package to one version, no
 * accidental major bump of a 0.x package).
 *
 * Options: --dry, --skip-build, --out <dir> (dry: keep the tarballs there), --allow-pending
 * (publish even though unreleased changesets exist).
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brokenMarkdownLinks, relativeMarkdownLinks, checkTarball, listPublishablePackages, packPackages, run, step, timings } from './release-lib.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const dry = flag('--dry');
const bin = (name) => join(root, 'node_modules/.bin', name);

const scratch = mkdtempSync(join(tmpdir(), 'mllm-release-'));
const outDir = option('--out') ? resolve(option('--out')) : join(scratch, 'tarballs');
let ok = false;
try {
  const packages = listPublishablePackages(root);
  console.log(`publishable packages: ${packages.map((p) => `${p.name}@${p.version}`).join(', ')}`);
  if (!flag('--skip-build')) {
    step('build (turbo run build --filter=./packages/*)', () => run('pnpm', ['exec', 'turbo', 'run', 'build', '--filter=./packages/*'], { cwd: root }));
  }

  step('publint --strict', () => {
    for (const p of packages) run(bin('publint'), ['--strict', p.dir], { cwd: root });
  });

  const tarballs = step(`pnpm pack → ${outDir}`, () => packPackages(packages, outDir));

  step('tarball contents', () => {
    const problems = packages.flatMap((p, i) => checkTarball(p, tarballs[i]).map((problem) => `${p.name}: ${problem}`));
    if (problems.length) throw new Error(`tarball problems:\n  ${problems.join('\n  ')}`);
    console.log(`${tarballs.length} tarballs: no workspace: ranges, every exported path present, README, CHANGELOG.md, LICENSE, metadata`);
  });

  step('documentation links (docs/*.md, package READMEs)', () => {
    const docs = join(root, 'docs');
    const files = [
      ...(existsSync(docs) ? readdirSync(docs).filter((f) => f.endsWith('.md')).map((f) => join(docs, f)) : []),
      ...packages.map((p) => join(p.dir, 'README.md')),
    ];
    const broken = brokenMarkdownLinks(files);
    if (broken.length) throw new Error(`broken relative links:\n  ${broken.join('\n  ')}`);
    const onNpm = relativeMarkdownLinks(packages.map((p) => join(p.dir, 'README.md')));
    if (onNpm.length) throw new Error(`package READMEs are shown on npm, where relative links do not resolve:\n  ${onNpm.join('\n  ')}`);
    console.log(`${files.length} Markdown files, relative links resolve; package READMEs have none`);
  });

  step('attw (are the types wrong?) on each tarball', () => {
    for (const tarball of tarballs) run(bin('attw'), [tarball], { cwd: root });
  });

  const pending = step('changeset status', () => {
    const statusFile = join(scratch, 'changeset-status.json');
    run(bin('changeset'), ['status', `--output=${statusFile}`], { cwd: root });
    const status = JSON.parse(readFileSync(statusFile, 'utf8'));
    const ours = status.releases.filter((r) => packages.some((p) => p.name === r.name));
    for (const r of ours) console.log(`  ${r.name}: ${r.oldVersion} → ${r.newVersion} (${r.type})`);
    const versions = new Set(ours.map((r) => r.newVersion));
    if (versions.size > 1) throw new Error(`the fixed group would release different versions: ${[...versions].join(', ')}`);
    const accidentalMajor = ours.filter((r) => r.type === 'major' && r.oldVersion.startsWith('0.'));
    const requestedMajor = status.changesets.some((c) => c.releases.some((r) => r.type === 'major'));
    if (accidentalMajor.length && !requestedMajor) {
      throw new Error(
        `no changeset asks for a major bump, yet ${accidentalMajor.map((r) => r.name).join(', ')} would go to ${accidentalMajor[0].newVersion} ` +
          '(a peer dependency on a bumped package forces major in changesets; see docs/releasing.md)',
      );
    }
    if (ours.length === 0) console.log('  no pending changesets: the versions in package.json are what would be published');
    return ours.length > 0;
  });

  if (dry) {
    console.log(`\nrelease:dry — nothing published. Tarballs:\n${tarballs.map((t) => `  ${t}`).join('\n')}`);
  } else {
    if (pending && !flag('--allow-pending')) {
      throw new Error('unreleased changesets exist: run `pnpm version-packages` (changeset version), commit, then `pnpm release`');
    }
    step('changeset publish', () => run(bin('changeset'), ['publish'], { cwd: root }));
    console.log('published; push the tags with `git push --follow-tags`');
  }
  ok = true;
} finally {
  console.log('\nrelease timings:');
  for (const [name, seconds] of timings) console.log(`  ${seconds.toFixed(1).padStart(6)} s  ${name}`);
  if (option('--out') || !ok) rmSync(join(scratch, 'changeset-status.json'), { force: true });
  if (!option('--out') && ok) rmSync(scratch, { recursive: true, force: true });
}
console.log(ok ? `release${dry ? ':dry' : ''}: PASSED` : `release${dry ? ':dry' : ''}: FAILED`);
process.exitCode = ok ? 0 : 1;
