#!/usr/bin/env node
/** Entry point of the `mllm` binary; all logic lives in `cli-main.ts`. */
import { runCli } from './cli-main.js';

runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`mllm: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
