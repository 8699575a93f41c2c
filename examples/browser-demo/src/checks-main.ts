/**
 * `checks.html`: runs the browser-safe @mllm/core checks on webgpu and on wasm (each started by
 * name; a backend that cannot start is reported as such) and exposes the reports as
 * `window.__mllmChecks` for the browser test. `?backends=webgpu,wasm` selects backends.
 */
import { startNamedBackend, type PageBackend } from './backend.js';
import { CORE_CHECK_COUNT, runCoreChecks, type ChecksReport } from './core-checks.js';

interface ChecksPageState {
  done: boolean;
  expectedChecks: number;
  reports: Array<ChecksReport | { backend: string; startError: string }>;
}

declare global {
  interface Window {
    __mllmChecks: ChecksPageState;
  }
}

const state: ChecksPageState = { done: false, expectedChecks: CORE_CHECK_COUNT, reports: [] };
window.__mllmChecks = state;

function render(): void {
  const container = document.getElementById('reports')!;
  container.replaceChildren();
  for (const report of state.reports) {
    const heading = document.createElement('h2');
    if ('startError' in report) {
      heading.textContent = `${report.backend}: could not start — ${report.startError}`;
      container.append(heading);
      continue;
    }
    heading.textContent = `${report.backend}: ${report.passed} passed, ${report.failed} failed, ${report.leakedTensors} leaked tensors`;
    const table = document.createElement('table');
    table.className = 'checks';
    table.innerHTML = '<tr><th></th><th>check</th><th>max |error|</th><th>ms</th><th></th></tr>';
    for (const outcome of report.outcomes) {
      const row = table.insertRow();
      const status = row.insertCell();
      status.textContent = outcome.passed ? 'pass' : 'FAIL';
      status.className = outcome.passed ? 'ok' : 'fail';
      row.insertCell().textContent = outcome.name;
      row.insertCell().textContent = outcome.maxError === undefined ? '' : outcome.maxError.toExponential(2);
      row.insertCell().textContent = outcome.ms.toFixed(0);
      row.insertCell().textContent = outcome.message ?? '';
    }
    container.append(heading, table);
  }
}

async function main(): Promise<void> {
  const backends = (new URLSearchParams(location.search).get('backends') ?? 'webgpu,wasm').split(',') as PageBackend[];
  for (const backend of backends) {
    try {
      await startNamedBackend(backend);
    } catch (error) {
      state.reports.push({ backend, startError: error instanceof Error ? error.message : String(error) });
      render();
      continue;
    }
    state.reports.push(await runCoreChecks());
    render();
  }
  state.done = true;
  document.body.dataset.state = 'done';
}

main().catch((error) => {
  state.reports.push({ backend: 'page', startError: error instanceof Error ? error.message : String(error) });
  state.done = true;
  render();
  document.body.dataset.state = 'done';
});
