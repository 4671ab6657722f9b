// Names from the file system (and messages quoting them) printed to a terminal or a text log: a
// newline in a file name must not start a line of its own (one entry, one line; no forged lines),
// and escape sequences must not reach the terminal. JSON logs are escaped by JSON already.

/** Control characters (C0, DEL, C1), line and paragraph separators, bidirectional overrides, and `\`. */
const UNPRINTABLE = /[\\\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const SHORT: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `text` on one line with nothing a terminal acts on: `\n`, `\r`, `\t` and `\\` as in JSON, other
 * control characters as `\xHH` (`\x1b`), separators and bidirectional controls as `\uHHHH`. Text
 * without any (almost every name) comes back as it is.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    return SHORT[c] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
  });
}
