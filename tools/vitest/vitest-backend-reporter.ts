/**
 * Vitest reporter: the default output, then how many tests passed/failed/were skipped on each
 * backend project, ending with one plain line `Tests: <N> passed, <M> failed, <K> skipped`.
 *
 * A test file that failed without any failing test (its setup or import threw) counts as one
 * failed test, and so does every unhandled error, so a broken backend can never look green.
 *
 * Hung files: vitest's `testTimeout` cannot stop a setup file that never finishes (it has no
 * timeout) or a test stuck in synchronous code, and a run that never ends prints nothing about why.
 * So this reporter keeps a watchdog: a test file still running `MLLM_TEST_FILE_LIMIT_S` seconds
 * (default 600; the slowest file takes ~20 s) after a worker began it is reported with every file
 * in flight, the worker processes are killed, and the run exits with status 1.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { DefaultReporter, type SerializedError, type TestModule, type TestRunEndReason, type Vitest } from 'vitest/node';

/** Environment variable: seconds a test file may run before the run is stopped as hung. */
export const TEST_FILE_LIMIT_ENV_VARIABLE = 'MLLM_TEST_FILE_LIMIT_S';
export const DEFAULT_TEST_FILE_LIMIT_S = 600;

/** `MLLM_TEST_FILE_LIMIT_S` (a positive number of seconds) or the default. */
export function testFileLimitSeconds(env: Record<string, string | undefined> = process.env): number {
  const raw = env[TEST_FILE_LIMIT_ENV_VARIABLE];
  if (raw === undefined || raw === '') return DEFAULT_TEST_FILE_LIMIT_S;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`${TEST_FILE_LIMIT_ENV_VARIABLE} must be a positive number of seconds, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** A test file a worker has begun and not finished. */
export interface RunningFile {
  label: string;
  startedAt: number;
}

/** The files running longer than `limitMs` at `now`, longest first. */
export function overdueFiles(running: Iterable<RunningFile>, now: number, limitMs: number): RunningFile[] {
  return [...running].filter((file) => now - file.startedAt > limitMs).sort((a, b) => a.startedAt - b.startedAt);
}

/** The sum over projects. */
function totals(byProject: Map<string, Counts>): Counts {
  const total = emptyCounts();
  for (const counts of byProject.values()) {
    total.files += counts.files;
    total.passed += counts.passed;
    total.failed += counts.failed;
    total.skipped += counts.skipped;
    total.durationMs += counts.durationMs;
  }
  return total;
}

/** Every descendant process of `pid` (Linux: read from /proc; elsewhere none). */
export function descendantPids(pid: number): number[] {
  const parentOf = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(entry), Number(fields[1]));
    } catch {
      // the process ended meanwhile
    }
  }
  const found: number[] = [];
  const frontier = [pid];
  while (frontier.length > 0) {
    const parent = frontier.pop()!;
    for (const [child, ppid] of parentOf) {
      if (ppid === parent && !found.includes(child)) {
        found.push(child);
        frontier.push(child);
      }
    }
  }
  return found;
}

interface Counts {
  files: number;
  passed: number;
  failed: number;
  skipped: number;
  /** Sum of the files' durations (ms): the time spent on this backend across workers. */
  durationMs: number;
}

function emptyCounts(): Counts {
  return { files: 0, passed: 0, failed: 0, skipped: 0, durationMs: 0 };
}

/** The name a test file's project is reported under. */
function projectName(testModule: TestModule): string {
  return testModule.project.name || 'default';
}

/** Counts tests per project name. */
export function countByProject(testModules: ReadonlyArray<TestModule>): Map<string, Counts> {
  const byProject = new Map<string, Counts>();
  for (const testModule of testModules) {
    const name = projectName(testModule);
    const counts = byProject.get(name) ?? emptyCounts();
    byProject.set(name, counts);
    counts.files += 1;
    counts.durationMs += testModule.diagnostic().duration;
    let failedTests = 0;
    for (const test of testModule.children.allTests()) {
      const state = test.result().state;
      if (state === 'passed') counts.passed += 1;
      else if (state === 'failed') {
        counts.failed += 1;
        failedTests += 1;
      } else counts.skipped += 1;
    }
    if (testModule.state() === 'failed' && failedTests === 0) counts.failed += 1;
  }
  return byProject;
}

export default class BackendSummaryReporter extends DefaultReporter {
  private readonly running = new Map<string, RunningFile>();
  private readonly finished: TestModule[] = [];
  private watchdog: ReturnType<typeof setInterval> | undefined;
  private readonly limitMs = testFileLimitSeconds() * 1000;

  override onInit(ctx: Vitest): void {
    super.onInit(ctx);
    const every = Math.min(30_000, Math.max(250, this.limitMs / 4));
    this.watchdog = setInterval(() => this.checkForHungFiles(), every);
    this.watchdog.unref();
  }

  override onTestModuleQueued(testModule: TestModule): void {
    super.onTestModuleQueued(testModule);
    // Sent by the worker when it begins the file (before its setup files run).
    const file = relative(this.ctx.config.root, testModule.moduleId);
    this.running.set(testModule.id, { label: `[${projectName(testModule)}] ${file}`, startedAt: Date.now() });
  }

  override onTestModuleEnd(testModule: TestModule): void {
    this.running.delete(testModule.id);
    this.finished.push(testModule);
    super.onTestModuleEnd(testModule);
  }

  private checkForHungFiles(): void {
    const now = Date.now();
    const overdue = overdueFiles(this.running.values(), now, this.limitMs);
    if (overdue.length === 0) return;
    clearInterval(this.watchdog);
    const lines = [
      '',
      `Hung test file: ${overdue[0]!.label} has run for ${Math.round((now - overdue[0]!.startedAt) / 1000)} s, ` +
        `more than ${TEST_FILE_LIMIT_ENV_VARIABLE}=${this.limitMs / 1000} s (a stuck setup file or synchronous code: ` +
        'no test timeout can stop it). Files in flight:',
      ...overdueFiles(this.running.values(), now, -1).map((file) => `  ${file.label}: ${Math.round((now - file.startedAt) / 1000)} s`),
    ];
    const workers = descendantPids(process.pid);
    for (const pid of workers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const done = totals(countByProject(this.finished));
    lines.push(
      `Killed ${workers.length} worker process(es); stopping the run (the hung file counts as one failed test).`,
      '',
      `Tests: ${done.passed} passed, ${done.failed + 1} failed, ${done.skipped} skipped`,
    );
    process.stderr.write(`${lines.join('\n')}\n`);
    process.exit(1);
  }

  override onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<SerializedError>,
    reason: TestRunEndReason,
  ): void {
    clearInterval(this.watchdog);
    super.onTestRunEnd(testModules, unhandledErrors, reason);
    const byProject = countByProject(testModules);
    const total = totals(byProject);
    const lines = ['', 'Per backend:'];
    for (const [name, counts] of [...byProject.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      lines.push(
        `  ${name.padEnd(10)} ${String(counts.passed).padStart(5)} passed ${String(counts.failed).padStart(4)} failed ` +
          `${String(counts.skipped).padStart(4)} skipped  (${counts.files} files, ${(counts.durationMs / 1000).toFixed(1)} s)`,
      );
    }
    total.failed += unhandledErrors.length;
    if (unhandledErrors.length > 0) lines.push(`  ${unhandledErrors.length} unhandled error(s) counted as failed`);
    lines.push('', `Tests: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
    this.ctx.logger.log(lines.join('\n'));
  }
}
