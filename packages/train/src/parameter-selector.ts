/**
 * Selecting parameters by name or by structure, shared by parameter groups and training stages.
 *
 * A selector is
 * - a string: matches a parameter whose name consists of the string's dot-separated components
 *   somewhere as whole components — exact (`lm_head.weight`), suffix (`bias` matches
 *   `model.norm.bias`), prefix (`model.mm_projector`) or inside (`mm_projector`), but never part
 *   of a component (`layers.1` does not match `layers.10.*`);
 * - a `RegExp`: tested against the full name;
 * - a `Module`: every parameter of that module (matched by variable identity, so it works at any
 *   depth of the model);
 * - a predicate `(name, parameter) => boolean`.
 */
import { Module, type Parameter } from '@mllm/core';

export type ParameterPredicate = (name: string, parameter: Parameter) => boolean;
export type ParameterSelector = string | RegExp | Module | ParameterPredicate;

/** True when `name` contains `pattern`'s dot-separated components as whole components. */
export function nameMatchesPattern(name: string, pattern: string): boolean {
  return `.${name}.`.includes(`.${pattern}.`);
}

/** A readable form of a selector for messages. */
export function describeSelector(selector: ParameterSelector): string {
  if (typeof selector === 'string') return JSON.stringify(selector);
  if (selector instanceof RegExp) return String(selector);
  if (selector instanceof Module) return `module ${selector.name}`;
  return 'predicate';
}

/** Compile a selector into a predicate over (name, parameter). */
export function compileSelector(selector: ParameterSelector, owner = 'selector'): ParameterPredicate {
  if (typeof selector === 'string') {
    if (selector.length === 0) throw new Error(`${owner}: a name pattern must be a non-empty string, got ""`);
    return (name) => nameMatchesPattern(name, selector);
  }
  if (selector instanceof RegExp) {
    // A fresh RegExp without the stateful `g`/`y` flags so `test` never depends on lastIndex.
    const pattern = new RegExp(selector.source, selector.flags.replace(/[gy]/g, ''));
    return (name) => pattern.test(name);
  }
  if (selector instanceof Module) {
    const variables = new Set(selector.namedParameters().map(([, parameter]) => parameter.variable));
    return (_name, parameter) => variables.has(parameter.variable);
  }
  if (typeof selector === 'function') return selector;
  throw new Error(`${owner}: expected a string, RegExp, Module or predicate, got ${typeof selector}`);
}

/** Names of `parameters` that any of `selectors` matches, per selector (for "matched nothing" checks). */
export function matchSelectors(
  parameters: Array<[string, Parameter]>,
  selectors: ParameterSelector[],
  owner: string,
): { matched: Set<string>; unmatchedSelectors: ParameterSelector[] } {
  const matched = new Set<string>();
  const unmatchedSelectors: ParameterSelector[] = [];
  for (const selector of selectors) {
    const predicate = compileSelector(selector, owner);
    let any = false;
    for (const [name, parameter] of parameters) {
      if (predicate(name, parameter)) {
        matched.add(name);
        any = true;
      }
    }
    if (!any) unmatchedSelectors.push(selector);
  }
  return { matched, unmatchedSelectors };
}
