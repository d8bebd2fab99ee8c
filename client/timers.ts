/** The longest delay setTimeout waits (about 24.8 days): runtimes take a longer one as 0 or 1. */
export const LONGEST_DELAY_MS = 2 ** 31 - 1;

/**
 * setTimeout for a wait the application sets (a timeout, the heartbeat): a delay longer than
 * setTimeout can wait (Infinity, say) sets no timer, as such a wait never ends; given to
 * setTimeout, it would end at once.
 */
export function startTimer(
  callback: () => void,
  ms: number,
): ReturnType<typeof setTimeout> | undefined {
  return ms <= LONGEST_DELAY_MS ? setTimeout(callback, ms) : undefined;
}
