// A bounded wait on a condition that has no event to await (a counter in another part of the
// server): checks it every few milliseconds and fails with `what` if it does not hold in time,
// so a regression fails with a message instead of the test runner's timeout.
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
