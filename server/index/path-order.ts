// The order files are kept in everywhere (walks, store listings, saved indexes, scan results).

/** Path order (of files, stamps): plain code-unit order, the same on every machine. */
export const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
