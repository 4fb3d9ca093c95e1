/** What a call threw, typed as Node's errors are; fails the test when nothing was thrown. */
export function caught(fn: () => unknown): Error & { code?: string; errno?: number; syscall?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string; errno?: number; syscall?: string };
  }
  throw new Error('expected the call to throw');
}
