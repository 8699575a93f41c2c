/** Types of scripts/doc-commands.mjs for the TypeScript tests that import it. */
export interface DocCommand {
  /** The document, relative to the repository root. */
  doc: string;
  /** The command line as the document shows it (comments and `\` continuations removed). */
  line: string;
  kind: 'block' | 'span' | 'snippet';
  /** The directory it runs from, relative to the root ('.' for the root). */
  cwd: string;
  /** A ```js snippet saved as `file` in `cwd` before the line runs. */
  snippet?: { file: string; code: string };
}
export interface DocCommandRule {
  match: RegExp;
  unless?: RegExp;
  when?: (command: DocCommand) => boolean;
  action: 'run' | 'ci' | 'test' | 'skip';
  reason?: string;
  budget?: number;
  writes?: string[];
  cwd?: string;
  step?: string;
  by?: string;
  template?: boolean;
  snippetFrom?: { file: string; doc: string; block: RegExp };
}
export interface DocCommandItem extends DocCommand {
  rule: DocCommandRule | undefined;
  problems: string[];
  duplicate?: boolean;
}
export const RULES: DocCommandRule[];
export function docFiles(root?: string): string[];
export function collectCommands(root?: string): DocCommand[];
export function ruleFor(command: DocCommand): DocCommandRule | undefined;
export function parseProblems(command: Pick<DocCommand, 'line' | 'cwd'> & Partial<DocCommand>): string[];
export function inventory(root?: string): DocCommandItem[];
