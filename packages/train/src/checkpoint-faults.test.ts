/**
 * Fault injection on checkpoint sets, in child processes against the built @mllm/core
 * (`test-fixtures/checkpoint-child.mjs`; `pnpm test` builds first):
 *
 * - a training run saving a checkpoint after every step is SIGKILLed at file-system operations
 *   (every kind of step of a save: opens, writes, fsyncs, both renames of the swap, removals),
 *   before or right after the operation, up to three times in a row; each next process resumes
 *   strictly from the directory, and the final weights must equal an uninterrupted run's bit for
 *   bit, with no temporary file, old set or lock left behind;
 * - two processes save to one path concurrently, each reading the set back after every save:
 *   every read is one writer's one save throughout.
 *
 * The kill points come from a seeded generator (`MLLM_FAULT_SEED` changes it). Backend-independent
 * file handling: run once, in the cpu project. The figures are printed (docs/reliability.md).
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { skipOnBackend } from '@mllm/core/testing';

const child = fileURLToPath(new URL('../test-fixtures/checkpoint-child.mjs', import.meta.url));
const STEPS = 8;

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runChild(args: string[], env: Record<string, string> = {}): Promise<ChildRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [child, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      const failure = error as (Error & { code?: number; signal?: NodeJS.Signals }) | null;
      resolve({ code: failure ? (typeof failure.code === 'number' ? failure.code : null) : 0, signal: failure?.signal ?? null, stdout, stderr });
    });
  });
}

const lastJson = (run: ChildRun) => JSON.parse(run.stdout.trim().split('\n').pop()!);

/** Seeded uniform integers in [0, n). */
function generator(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
}

/** Entries a finished run must not leave: temporaries and locks beside the set, stray files in it. */
function leftovers(root: string): string[] {
  const beside = readdirSync(root).filter((e) => e !== 'ckpt');
  const inside = readdirSync(join(root, 'ckpt')).filter((e) => e.startsWith('.'));
  return [...beside, ...inside.map((e) => `ckpt/${e}`)];
}

const skip = skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'file handling in child processes on the cpu backend; run once, in the cpu project');

describe.skipIf(skip)('checkpoint sets under SIGKILL and concurrent writers', () => {
  it('a run killed at random file operations (renames included) resumes to the uninterrupted weights bit for bit, leaving nothing behind', async () => {
    const seed = Number(process.env.MLLM_FAULT_SEED ?? 20);
    const next = generator(seed);
    const referenceRoot = mkdtempSync(join(tmpdir(), 'mllm-faults-'));
    const reference = await runChild(['train', join(referenceRoot, 'ckpt'), String(STEPS)], { MLLM_TRACE_OPS: '1' });
    expect(reference.code, reference.stderr).toBe(0);
    const { params: expected, trace } = lastJson(reference) as { params: number[]; trace: string[] };
    rmSync(referenceRoot, { recursive: true, force: true });
    expect(trace.filter((name) => name === 'rename').length).toBeGreaterThanOrEqual(5 * STEPS); // 3 files, manifest, swap
    // Kill points within a resumed process's first two saves (each process saves after every step).
    const window = Math.floor((2 * trace.length) / STEPS);
    const renames = trace.slice(0, window).flatMap((name, i) => (name === 'rename' ? [i + 1] : []));

    const figures = { chains: 0, kills: 0, killsAtRename: 0, resumedExactly: 0, resumedDifferently: 0, refused: 0, orphansLeft: 0, lockLeft: 0 };
    const problems: string[] = [];
    for (let chain = 0; chain < 8; chain++) {
      const root = mkdtempSync(join(tmpdir(), 'mllm-faults-'));
      const dir = join(root, 'ckpt');
      let refused = false;
      for (let kill = 0; kill < 3 && !refused; kill++) {
        // Half the kills at a rename (a swap or a file's rename into place), half anywhere.
        const atRename = next(2) === 0;
        const op = atRename ? renames[next(renames.length)] : 1 + next(window);
        const after = next(2) === 1;
        const run = await runChild(['train', dir, String(STEPS)], { MLLM_KILL_AT_OP: String(op), MLLM_KILL_AFTER: after ? '1' : '0' });
        if (run.code === 3) {
          refused = true;
          problems.push(`chain ${chain}: refused after a kill: ${lastJson(run).refused}`);
        } else if (run.signal === 'SIGKILL') {
          figures.kills += 1;
          if (atRename) figures.killsAtRename += 1;
        } else {
          // A process resumed near the end may finish before the kill point.
          expect(run.code, run.stderr).toBe(0);
        }
      }
      const final = refused ? null : await runChild(['train', dir, String(STEPS)]);
      if (final && final.code === 3) {
        refused = true;
        problems.push(`chain ${chain}: final resume refused: ${lastJson(final).refused}`);
      }
      if (refused) figures.refused += 1;
      else {
        expect(final!.code, `${final!.stdout}\n${final!.stderr}`).toBe(0);
        const result = lastJson(final!);
        expect(result.step).toBe(STEPS);
        if (JSON.stringify(result.params) === JSON.stringify(expected)) figures.resumedExactly += 1;
        else {
          figures.resumedDifferently += 1;
          problems.push(`chain ${chain}: final weights differ from the uninterrupted run`);
        }
      }
      const left = leftovers(root);
      figures.orphansLeft += left.filter((e) => !e.endsWith('.lock')).length;
      figures.lockLeft += left.filter((e) => e.endsWith('.lock')).length;
      if (left.length) problems.push(`chain ${chain}: left ${left.join(', ')}`);
      figures.chains += 1;
      rmSync(root, { recursive: true, force: true });
    }
    console.info(`checkpoint kill trials (seed ${seed}): ${JSON.stringify(figures)}`);
    expect(problems).toEqual([]);
    expect(figures.resumedExactly).toBe(figures.chains);
    expect(figures.kills).toBeGreaterThanOrEqual(20);
  }, 120_000);

  it('two processes saving to one path: every read-back is one save of one writer; the last set is whole', async () => {
    const root = mkdtempSync(join(tmpdir(), 'mllm-writers-'));
    const dir = join(root, 'ckpt');
    const rounds = 15;
    const [a, b] = await Promise.all([runChild(['write', dir, '1', String(rounds)]), runChild(['write', dir, '2', String(rounds)])]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const reports = [lastJson(a), lastJson(b)];
    for (const report of reports) expect(report).toEqual({ saves: rounds, checked: rounds, mixed: 0, refused: 0, errors: [] });
    expect(leftovers(root)).toEqual([]);
    console.info(`two writers, ${rounds} saves each: ${JSON.stringify(reports)}`);
    rmSync(root, { recursive: true, force: true });
  }, 60_000);
});
