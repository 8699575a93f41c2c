// A run with one hung file, for vitest-backend-reporter.test.ts: the reporter's watchdog must name
// the file, kill the worker stuck in synchronous code and end the run with status 1.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('.', import.meta.url)),
    include: ['*.fixture.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    reporters: [fileURLToPath(new URL('../../vitest-backend-reporter.ts', import.meta.url))],
  },
});
