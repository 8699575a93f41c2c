// @ts-check
/**
 * TypeDoc plugin: name each entry-point module after its package (`core/src` → `@mllm/core`,
 * `core/src/testing` → `@mllm/core/testing`) instead of after its path, without adding `@module`
 * tags to the packages' sources.
 */
import { Converter, ReflectionKind } from 'typedoc';

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const reflection of context.project.getReflectionsByKind(ReflectionKind.Module)) {
      const match = /^(?:packages\/)?([\w-]+)\/src(\/testing)?$/.exec(reflection.name);
      if (match) reflection.name = `@mllm/${match[1]}${match[2] ?? ''}`;
    }
  });
}
