/**
 * The suite's reporter: per-project counts and the hung-file watchdog (a real nested vitest run
 * whose one file spins forever must end, name the file and leave no worker process behind).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { skipOnBackend } from '@mllm/core/testing';
import {
  DEFAULT_TEST_FILE_LIMIT_S,
  descendantPids,
  overdueFiles,
  TEST_FILE_LIMIT_ENV_VARIABLE,
  testFileLimitSeconds,
} from './vitest-backend-reporter.js';

const skip = skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'tests the test runner itself, not a backend; run once, in the cpu project');
const repositoryRoot = fileURLToPath(new URL('../../', import.meta.url));
const fixtureConfig = fileURLToPath(new URL('./test-fixtures/hung-run/vitest.config.ts', import.meta.url));

/** Whether `pid` is still running (a zombie waiting to be reaped is not). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe.skipIf(skip)('vitest-backend-reporter watchdog', () => {
  it('reads MLLM_TEST_FILE_LIMIT_S (default 600 s) and rejects bad values with the name and value', () => {
    expect(testFileLimitSeconds({})).toBe(DEFAULT_TEST_FILE_LIMIT_S);
    expect(testFileLimitSeconds({ [TEST_FILE_LIMIT_ENV_VARIABLE]: '2.5' })).toBe(2.5);
    for (const bad of ['0', '-1', 'soon']) {
      expect(() => testFileLimitSeconds({ [TEST_FILE_LIMIT_ENV_VARIABLE]: bad })).toThrow(
        `MLLM_TEST_FILE_LIMIT_S must be a positive number of seconds, got "${bad}"`,
      );
    }
  });

  it('overdueFiles keeps the files past the limit, longest-running first', () => {
    const running = [
      { label: 'b', startedAt: 500 },
      { label: 'a', startedAt: 100 },
      { label: 'c', startedAt: 950 },
    ];
    expect(overdueFiles(running, 1000, 400).map((f) => f.label)).toEqual(['a', 'b']);
    expect(overdueFiles(running, 1000, 5000)).toEqual([]);
  });

  it.skipIf(process.platform !== 'linux')('descendantPids finds children and grandchildren', async () => {
    const shell = spawn('sh', ['-c', 'sleep 30 & sleep 30 & wait'], { stdio: 'ignore' });
    try {
      let found: number[] = [];
      for (let i = 0; i < 50 && found.length < 3; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        found = descendantPids(process.pid);
      }
      expect(found).toContain(shell.pid);
      expect(descendantPids(shell.pid!)).toHaveLength(2);
    } finally {
      for (const pid of descendantPids(shell.pid!)) process.kill(pid, 'SIGKILL');
      shell.kill('SIGKILL');
    }
  });

  it.skipIf(process.platform !== 'linux')(
    'a file stuck in synchronous code stops the run: status 1, the file named, counts printed, no worker left',
    async () => {
      const env = Object.fromEntries(
        Object.entries(process.env).filter(([name]) => !name.startsWith('VITEST') && name !== 'MLLM_TEST_BACKEND' && name !== 'NODE_OPTIONS'),
      );
      env[TEST_FILE_LIMIT_ENV_VARIABLE] = '4';
      const run = spawn(process.execPath, [`${repositoryRoot}node_modules/vitest/vitest.mjs`, 'run', '--config', fixtureConfig], {
        cwd: repositoryRoot,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      run.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      run.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const workers = new Set<number>();
      const sampler = setInterval(() => descendantPids(run.pid!).forEach((pid) => workers.add(pid)), 200);
      const started = Date.now();
      const status = await new Promise<number | null>((resolve) => run.on('exit', (code) => resolve(code)));
      clearInterval(sampler);
      const seconds = (Date.now() - started) / 1000;
      expect(status, output).toBe(1);
      expect(seconds, 'ended by the watchdog, not by the test timeout').toBeLessThan(60);
      expect(output).toMatch(/Hung test file: \[\w*\] spins\.fixture\.ts has run for \d+ s, more than MLLM_TEST_FILE_LIMIT_S=4 s/);
      expect(output).toMatch(/Killed [1-9]\d* worker process\(es\)/);
      expect(output).toMatch(/\n {2}\[\w*\] spins\.fixture\.ts: \d+ s\n/);
      // passes.fixture.ts may or may not have run (one worker on two cores): its test is counted if it did.
      expect(output).toMatch(/Tests: [01] passed, 1 failed, 0 skipped/);
      expect(workers.size, 'the run had worker processes').toBeGreaterThan(0);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect([...workers].filter(alive), 'worker processes left running').toEqual([]);
    },
    90_000,
  );
});
