/**
 * Vitest reporter: the default output, then how many tests passed/failed/were skipped on each
 * backend project, ending with one plain line `Tests: <N> passed, <M> failed, <K> skipped`.
 *
 * A test file that failed without any failing test (its setup or import threw) counts as one
 * failed test, and so does every unhandled error, so a broken backend can never look green.
 */
import { DefaultReporter, type SerializedError, type TestModule, type TestRunEndReason } from 'vitest/node';

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

/** Counts tests per project name. */
export function countByProject(testModules: ReadonlyArray<TestModule>): Map<string, Counts> {
  const byProject = new Map<string, Counts>();
  for (const testModule of testModules) {
    const name = testModule.project.name || 'default';
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
  override onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<SerializedError>,
    reason: TestRunEndReason,
  ): void {
    super.onTestRunEnd(testModules, unhandledErrors, reason);
    const byProject = countByProject(testModules);
    const total = emptyCounts();
    const lines = ['', 'Per backend:'];
    for (const [name, counts] of [...byProject.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      lines.push(
        `  ${name.padEnd(10)} ${String(counts.passed).padStart(5)} passed ${String(counts.failed).padStart(4)} failed ` +
          `${String(counts.skipped).padStart(4)} skipped  (${counts.files} files, ${(counts.durationMs / 1000).toFixed(1)} s)`,
      );
      total.passed += counts.passed;
      total.failed += counts.failed;
      total.skipped += counts.skipped;
    }
    total.failed += unhandledErrors.length;
    if (unhandledErrors.length > 0) lines.push(`  ${unhandledErrors.length} unhandled error(s) counted as failed`);
    lines.push('', `Tests: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
    this.ctx.logger.log(lines.join('\n'));
  }
}
