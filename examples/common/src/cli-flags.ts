import { isAbsolute, resolve } from 'node:path';

/**
 * The flags every example takes: `--backend`, `--steps`, `--seed` (or `--seeds 1,2,3`), `--out`,
 * `--smoke` (a few steps, for the test suite). Unknown flags are an error, not silently ignored.
 */
export interface ExampleFlags {
  backend: 'auto' | 'cpu' | 'wasm' | 'webgpu' | 'tensorflow';
  steps: number | null;
  seeds: number[];
  out: string;
  smoke: boolean;
  /** Extra numeric/string flags an example declared. */
  extra: Record<string, string>;
}

const BACKENDS = ['auto', 'cpu', 'wasm', 'webgpu', 'tensorflow'] as const;

export function parseExampleFlags(
  argv: string[],
  defaults: { out: string; seeds: number[]; extraFlags?: string[] },
): ExampleFlags {
  const flags: ExampleFlags = {
    backend: (process.env.MLLM_BACKEND as ExampleFlags['backend']) || 'auto',
    steps: null,
    seeds: defaults.seeds,
    out: defaults.out,
    smoke: false,
    extra: {},
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    // `pnpm example:parrot -- --steps 20` runs a nested `pnpm … start`, which passes the `--` on
    // verbatim; a bare `--` only separates pnpm's own flags from the script's, so it is skipped.
    if (arg === '--') continue;
    const [name, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case '--backend': {
        const v = value();
        if (!(BACKENDS as readonly string[]).includes(v)) throw new Error(`--backend must be one of ${BACKENDS.join(', ')}, got '${v}'`);
        flags.backend = v as ExampleFlags['backend'];
        break;
      }
      case '--steps': {
        const v = Number(value());
        if (!Number.isInteger(v) || v <= 0) throw new Error(`--steps must be a positive integer, got '${v}'`);
        flags.steps = v;
        break;
      }
      case '--seed':
      case '--seeds': {
        const list = value().split(',').map((s) => Number(s.trim()));
        if (!list.length || list.some((s) => !Number.isInteger(s))) throw new Error(`${name} must be integers (e.g. 1 or 1,2,3), got '${list}'`);
        flags.seeds = list;
        break;
      }
      case '--out':
        flags.out = value();
        break;
      case '--smoke':
        flags.smoke = true;
        break;
      case '--help':
      case '-h':
        throw new Error(
          `flags: --backend ${BACKENDS.join('|')}  --steps N  --seed S | --seeds S1,S2,..  --out DIR  --smoke` +
            (defaults.extraFlags?.length ? `  ${defaults.extraFlags.map((f) => `--${f} V`).join('  ')}` : ''),
        );
      default: {
        const key = name.replace(/^--/, '');
        if (name.startsWith('--') && defaults.extraFlags?.includes(key)) {
          flags.extra[key] = value();
          break;
        }
        throw new Error(`unknown flag '${arg}' (try --help)`);
      }
    }
  }
  // `pnpm --filter <example> start` runs in the example's folder; a relative --out (and the default)
  // is meant relative to where the user typed the command, which pnpm passes as INIT_CWD.
  if (!isAbsolute(flags.out)) flags.out = resolve(process.env.INIT_CWD ?? process.cwd(), flags.out);
  return flags;
}
