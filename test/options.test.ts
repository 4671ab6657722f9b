// The options table is the one source: the CLI's flags, startServer's names and defaults, and the
// README's table all come from it (or this fails).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { DEFAULTS, OPTIONS, apiName, optionsTableMarkdown, withDefaults, type OptionRow } from '../server/options.js';
import { DEFAULT_CONNECTION_LIMITS, DEFAULT_LIMITS } from '../server/index.js';
import { generatedBlock, README } from '../scripts/docs-tables.js';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'server', 'cli.js');
const rows = OPTIONS as readonly OptionRow[];
const help = (command: string) => execFileSync(process.execPath, [cli, command, '--help'], { encoding: 'utf8' });

describe('options table', () => {
  it('the README table is the generated one (node --import tsx scripts/docs-tables.ts)', () => {
    assert.equal(generatedBlock(readFileSync(README, 'utf8'), 'options'), optionsTableMarkdown());
  });

  it('each flag appears once, and its API name is the flag camel-cased', () => {
    const flags = rows.map((r) => r.flag);
    assert.equal(new Set(flags).size, flags.length);
    assert.equal(apiName('--max-queued-frames-total'), 'maxQueuedFramesTotal');
    assert.equal(apiName('--no-watch'), 'watch');
    for (const r of rows) if (!r.cliOnly && r.default !== undefined) assert.ok(apiName(r.flag) in DEFAULTS, r.flag);
  });

  it('the CLI offers every flag of the table, and only those (plus --help; scan\'s --json)', () => {
    for (const command of ['serve', 'index', 'scan'] as const) {
      const text = help(command);
      const offered = new Set([...text.matchAll(/(?:^|\s)(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!));
      offered.delete('--help');
      if (command === 'scan') assert.ok(offered.delete('--json'));
      const expected = new Set(rows.filter((r) => r.commands.includes(command)).map((r) => r.flag));
      assert.deepEqual([...offered].sort(), [...expected].sort(), `dicomstream ${command} --help`);
    }
  });

  it('enumerated options are choices: a bad --log-level is a usage error (exit 2) naming the choices', () => {
    let status = 0;
    let stderr = '';
    try {
      execFileSync(process.execPath, [cli, 'serve', '--log-level', 'verbose'], { encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      ({ status, stderr } = e as { status: number; stderr: string });
    }
    assert.equal(status, 2);
    assert.match(stderr, /Allowed choices are debug, info, warn, error, silent/);
  });

  it('the limits the server enforces by default are the table\'s defaults', () => {
    const d = withDefaults({});
    assert.equal(DEFAULT_LIMITS.chunkBytes, d.chunkSize);
    assert.equal(DEFAULT_LIMITS.maxBufferedBytes, d.maxBuffered);
    assert.equal(DEFAULT_LIMITS.maxMessageBytes, d.maxMessageSize);
    assert.equal(DEFAULT_LIMITS.maxMessagesPerSecond, d.rateLimit);
    assert.equal(DEFAULT_LIMITS.maxQueuedFramesInAll, d.maxQueuedFramesTotal);
    assert.equal(DEFAULT_LIMITS.maxPageSize, d.maxPageSize);
    assert.equal(DEFAULT_CONNECTION_LIMITS.heartbeatMs, d.heartbeat * 1000);
    assert.equal(DEFAULT_CONNECTION_LIMITS.maxConnections, d.maxConnections);
    // Given options win over defaults; undefined ones do not erase them.
    assert.equal(withDefaults({ frameCache: 5, readahead: undefined }).frameCache, 5);
    assert.equal(withDefaults({ readahead: undefined }).readahead, DEFAULTS.readahead);
  });

  it('--help shows each default as the docs do', () => {
    const text = help('serve').replace(/\s+/g, ' ');
    assert.match(text, /--chunk-size <bytes> largest frame chunk in one message \(a frame up to it goes whole, as one message\) \(default: 1 MiB\)/);
    assert.match(text, /--heartbeat <seconds> .*?\(default: 30 s\)/);
  });
});
