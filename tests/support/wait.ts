/** Resolves with `promise`, or rejects after `ms` naming what was awaited. No sleeping. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Conditions a test waits for without polling: `until(find)` resolves with the first value
 * `find` gives that is not undefined, checked now and at each `changed()`, or rejects after
 * `ms` naming what was awaited.
 */
export function createWatch() {
  const waiters = new Set<() => void>();
  return {
    changed(): void {
      for (const waiter of [...waiters]) waiter();
    },
    async until<T>(find: () => T | undefined, what: string, ms = 2_000): Promise<T> {
      let waiter = () => {};
      const found = new Promise<T>((resolve) => {
        waiter = () => {
          const value = find();
          if (value !== undefined) resolve(value);
        };
        waiters.add(waiter);
        waiter();
      });
      try {
        return await within(found, ms, what);
      } finally {
        waiters.delete(waiter);
      }
    },
  };
}

/**
 * Whether `work` settled while what `release` lets go was still held: `work` is given `ms` to
 * settle on its own, then `release` is called and `work` awaited.
 */
export async function settledWhileHeld(
  work: Promise<unknown>,
  release: () => void,
  ms = 50,
): Promise<boolean> {
  let settled = false;
  const watched = work.finally(() => (settled = true));
  await new Promise((resolve) => setTimeout(resolve, ms));
  const early = settled;
  release();
  await watched;
  return early;
}
