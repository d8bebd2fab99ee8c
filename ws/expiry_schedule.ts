/**
 * When each open socket's token expires, under one timer for all of them. A timer per socket
 * held about 220 bytes of heap for the socket's whole life (heap snapshots), and was set and
 * cleared at every connect and close. Items due within the same `resolutionMs` share a bucket,
 * due at the bucket's end; tokens expire on whole seconds (`exp`), so at the default resolution
 * nothing expires late. The timer waits for the earliest bucket, and none is set while the
 * schedule is empty. `expire` must not throw: the items after it would not expire.
 */
export function createExpirySchedule<T>(
  expire: (item: T) => void,
  options: { now: () => number; resolutionMs?: number },
) {
  const { now } = options;
  const resolutionMs = options.resolutionMs ?? 1_000;
  const buckets = new Map<number, Set<T>>();
  /** The keys of `buckets`, ascending. */
  const keys: number[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** The key `timer` was set for. */
  let armedFor: number | undefined;

  const keyOf = (at: number) => Math.ceil(at / resolutionMs);

  /** Where `key` is in `keys`, or where it would go. */
  function position(key: number): number {
    let low = 0;
    let high = keys.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (keys[middle]! < key) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  function arm(): void {
    const first = keys[0];
    if (first === armedFor) return;
    clearTimeout(timer);
    timer = undefined;
    armedFor = first;
    if (first === undefined) return;
    // setTimeout cannot wait longer than 2^31 - 1 ms; past that it wakes early and waits again
    const delay = Math.min(Math.max(0, first * resolutionMs - now()), 2_147_483_647);
    timer = setTimeout(fire, delay);
  }

  function fire(): void {
    timer = undefined;
    armedFor = undefined;
    const current = now();
    while (keys.length > 0 && keys[0]! * resolutionMs <= current) {
      const key = keys.shift()!;
      const due = buckets.get(key)!;
      // taken out first: an item that leaves the schedule as it expires finds nothing to do
      buckets.delete(key);
      for (const item of due) expire(item);
    }
    arm();
  }

  return {
    /** Expires `item` at `at` (ms, on the `now` clock), unless it is deleted first. */
    add(item: T, at: number): void {
      const key = keyOf(at);
      const bucket = buckets.get(key);
      if (bucket) return void bucket.add(item);
      buckets.set(key, new Set([item]));
      keys.splice(position(key), 0, key);
      arm();
    },

    /** Forgets `item`, added with the same `at`. */
    delete(item: T, at: number): void {
      const key = keyOf(at);
      const bucket = buckets.get(key);
      if (!bucket?.delete(item) || bucket.size > 0) return;
      buckets.delete(key);
      keys.splice(position(key), 1);
      arm();
    },
  };
}

export type ExpirySchedule<T> = ReturnType<typeof createExpirySchedule<T>>;
