import { it } from 'vitest';

// Synchronous code that never returns: vitest's testTimeout cannot interrupt it.
it('spins forever', () => {
  for (;;) {
    // busy
  }
});
