/**
 * The copy registry and the module packages' core-version check (backend-independent: the same
 * assertions on every project). The caret table follows npm's documented `^` rules.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CORE_VERSION, loadedCoreCopies, requireCoreVersion, satisfiesCaret } from './index.js';
import { CORE_REGISTRY_KEY, coreRegistry, duplicateCoreMessage, registerCoreCopy, type CoreRegistry } from './package-identity.js';

const freshRegistry = (): CoreRegistry => ({ copies: [], warnedDuplicate: false, warnedDependents: [] });
const collector = () => {
  const messages: string[] = [];
  return { messages, warn: (message: string) => void messages.push(message) };
};

describe('this copy of @mllm/core', () => {
  it('knows its package.json version and registered itself, with its file, under Symbol.for("@mllm/core")', () => {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(CORE_VERSION).toBe(manifest.version);
    const own = loadedCoreCopies().filter((c) => c.version === CORE_VERSION && /package-identity\.ts$/.test(c.location));
    expect(own).toHaveLength(1);
    expect((globalThis as unknown as Record<symbol, unknown>)[Symbol.for('@mllm/core')]).toBe(coreRegistry());
    expect(CORE_REGISTRY_KEY).toBe(Symbol.for('@mllm/core'));
  });

  it('loadedCoreCopies returns a copy of the list (callers cannot edit the registry)', () => {
    const list = loadedCoreCopies() as unknown as unknown[];
    list.length = 0;
    expect(loadedCoreCopies().length).toBeGreaterThan(0);
  });
});

describe('registerCoreCopy', () => {
  const a = { version: '0.2.0', location: '/app/node_modules/@mllm/core/dist/index.js' };
  const b = { version: '0.3.0', location: '/app/node_modules/@mllm/parrot/node_modules/@mllm/core/dist/index.js' };

  it('is silent for the first copy and for the same file loaded again', () => {
    const registry = freshRegistry();
    const { messages, warn } = collector();
    registerCoreCopy(a, registry, warn);
    registerCoreCopy({ ...a }, registry, warn);
    expect(messages).toEqual([]);
    expect(registry.copies).toEqual([a]);
  });

  it('warns once, at the second copy, naming both versions and files, what is per copy and how to dedupe', () => {
    const registry = freshRegistry();
    const { messages, warn } = collector();
    registerCoreCopy(a, registry, warn);
    registerCoreCopy(b, registry, warn);
    registerCoreCopy({ version: '0.4.0', location: '/elsewhere/@mllm/core/dist/index.cjs' }, registry, warn);
    expect(messages).toHaveLength(1);
    const [message] = messages as [string];
    expect(message).toContain('@mllm/core is loaded 2 times in this process');
    expect(message).toContain(`@mllm/core 0.2.0 from ${a.location}`);
    expect(message).toContain(`@mllm/core 0.3.0 from ${b.location}`);
    expect(message).toContain('setSeed');
    expect(message).toContain("initBackend's choice");
    expect(message).toContain('npm dedupe');
    expect(message).toContain('npm ls @mllm/core');
    expect(registry.copies).toHaveLength(3);
  });

  it('tells the ESM + CommonJS builds of one install apart from two installs', () => {
    const esmAndCjs = duplicateCoreMessage([
      { version: '0.2.0', location: '/app/node_modules/@mllm/core/dist/index.js' },
      { version: '0.2.0', location: '/app/node_modules/@mllm/core/dist/index.cjs' },
    ]);
    expect(esmAndCjs).toContain('the ESM and the CommonJS build of one install');
    expect(esmAndCjs).not.toContain('npm dedupe');
    const twoInstalls = duplicateCoreMessage([
      { version: '0.2.0', location: '/app/node_modules/@mllm/core/dist/index.js' },
      { version: '0.2.0', location: '/app/packages/x/node_modules/@mllm/core/dist/index.js' },
    ]);
    expect(twoInstalls).toContain('npm dedupe');
  });
});

describe('satisfiesCaret (npm ^ rules)', () => {
  const table: [version: string, base: string, satisfied: boolean][] = [
    ['1.2.3', '1.2.3', true],
    ['1.9.0', '1.2.3', true],
    ['1.2.2', '1.2.3', false],
    ['2.0.0', '1.2.3', false],
    ['0.2.5', '0.2.3', true],
    ['0.2.2', '0.2.3', false],
    ['0.3.0', '0.2.3', false],
    ['1.0.0', '0.2.3', false],
    ['0.0.3', '0.0.3', true],
    ['0.0.4', '0.0.3', false],
    ['0.2.0-beta.1', '0.2.0', true],
    ['v0.2.1', '0.2.0', true],
  ];
  it.each(table)('%s satisfies ^%s: %s', (version, base, satisfied) => {
    expect(satisfiesCaret(version, base)).toBe(satisfied);
  });

  it('refuses what is not a version, naming it', () => {
    expect(() => satisfiesCaret('latest', '0.2.0')).toThrow('version must be a semver version like 1.2.3, got "latest"');
    expect(() => satisfiesCaret('0.2.0', '^0.2.0')).toThrow('base must be a semver version like 1.2.3, got "^0.2.0"');
  });
});

describe('requireCoreVersion', () => {
  const core = (version: string) => ({ version, location: `/app/node_modules/@mllm/core/dist/index.js` });

  it('passes for the core of the same release, and for a newer patch', () => {
    const { messages, warn } = collector();
    expect(requireCoreVersion('@mllm/parrot', '0.2.0', core('0.2.0'), warn, freshRegistry())).toBe('ok');
    expect(requireCoreVersion('@mllm/parrot', '0.2.0', core('0.2.4'), warn, freshRegistry())).toBe('ok');
    expect(messages).toEqual([]);
  });

  it('throws for another 0.x minor, with both versions, where the core is and the command that aligns them', () => {
    const call = () => requireCoreVersion('@mllm/parrot', '0.2.0', core('0.3.0'), () => undefined, freshRegistry());
    expect(call).toThrow('@mllm/parrot 0.2.0 needs @mllm/core ^0.2.0, but the @mllm/core it imported is 0.3.0 (from /app/node_modules/@mllm/core/dist/index.js)');
    expect(call).toThrow('a 0.x minor changes the contract');
    expect(call).toThrow('`npm install @mllm/parrot@0.3.0 @mllm/core@0.3.0`');
    expect(() => requireCoreVersion('@mllm/wings', '0.3.0', core('0.2.9'), () => undefined, freshRegistry())).toThrow(
      '@mllm/wings 0.3.0 needs @mllm/core ^0.3.0, but the @mllm/core it imported is 0.2.9',
    );
  });

  it('throws for another major', () => {
    expect(() => requireCoreVersion('@mllm/vpgc', '1.4.0', core('2.0.0'), () => undefined, freshRegistry())).toThrow(
      'a major changes the contract',
    );
    expect(requireCoreVersion('@mllm/vpgc', '1.4.0', core('1.9.0'), () => undefined, freshRegistry())).toBe('ok');
  });

  it('warns once per module package for an older patch of the same minor', () => {
    const registry = freshRegistry();
    const { messages, warn } = collector();
    expect(requireCoreVersion('@mllm/parrot', '0.2.3', core('0.2.0'), warn, registry)).toBe('older');
    expect(requireCoreVersion('@mllm/parrot', '0.2.3', core('0.2.0'), warn, registry)).toBe('older');
    expect(requireCoreVersion('@mllm/wings', '0.2.3', core('0.2.0'), warn, registry)).toBe('older');
    expect(messages).toHaveLength(2);
    expect(messages[0]).toBe(
      '@mllm/parrot 0.2.3 was released with @mllm/core 0.2.3; the @mllm/core it imported is the older 0.2.0 ' +
        '(from /app/node_modules/@mllm/core/dist/index.js), which may lack fixes it relies on. Run `npm install @mllm/core@0.2.3`.',
    );
  });

  it('names a bad argument', () => {
    expect(() => requireCoreVersion('', '0.2.0')).toThrow('requireCoreVersion: dependent must be a package name, got ""');
    expect(() => requireCoreVersion('@mllm/parrot', 'workspace:*')).toThrow(
      'requireCoreVersion: the version of @mllm/parrot must be a semver version like 1.2.3, got "workspace:*"',
    );
  });

  it('the module packages in this workspace pass against this core (their index imports run the check)', async () => {
    const registry = coreRegistry();
    const before = registry.warnedDependents.length;
    for (const name of ['parrot', 'wings', 'vpgc']) {
      const manifest = JSON.parse(readFileSync(new URL(`../../${name}/package.json`, import.meta.url), 'utf8')) as { name: string; version: string };
      expect(requireCoreVersion(manifest.name, manifest.version)).toBe('ok');
    }
    expect(registry.warnedDependents.length).toBe(before);
  });
});
