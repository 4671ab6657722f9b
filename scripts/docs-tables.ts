// Writes the README's generated tables (options, errors) from their one source each:
// `node --import tsx scripts/docs-tables.ts` (test/options.test.ts and test/errors.test.ts fail
// when the README and the sources disagree).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorsTableMarkdown } from '../shared/errors.js';
import { optionsTableMarkdown } from '../server/options.js';

export const README = join(dirname(fileURLToPath(import.meta.url)), '..', 'README.md');

/** The tables, by the name of their `<!-- NAME:start -->` … `<!-- NAME:end -->` markers. */
export const GENERATED: Record<string, () => string> = { options: optionsTableMarkdown, errors: errorsTableMarkdown };

/** The text between a table's markers in `readme`. */
export function generatedBlock(readme: string, name: string): string | undefined {
  const m = new RegExp(`<!-- ${name}:start -->\\n?([\\s\\S]*?)\\n?<!-- ${name}:end -->`).exec(readme);
  return m?.[1];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let text = readFileSync(README, 'utf8');
  for (const [name, make] of Object.entries(GENERATED)) {
    if (generatedBlock(text, name) === undefined) throw new Error(`README.md has no ${name}:start/end markers`);
    text = text.replace(new RegExp(`<!-- ${name}:start -->[\\s\\S]*?<!-- ${name}:end -->`), () => `<!-- ${name}:start -->\n${make()}\n<!-- ${name}:end -->`);
  }
  writeFileSync(README, text);
}
