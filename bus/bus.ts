/** Called with each payload published on a subject this handler subscribed to. */
export type BusHandler = (payload: Uint8Array, subject: string) => void;

/**
 * The one channel between instances. `publish` hands the payload to this instance's
 * subscribers at once, in call order, and to every other instance; a payload never comes
 * back to the instance that published it. Subscriptions are reference-counted per subject:
 * the transport is asked for a subject only while some local handler wants it.
 */
export interface Bus {
  publish(subject: string, payload: Uint8Array): void;
  /** `subject` may use NATS wildcards (`*`, `>`). Returns the unsubscribe. */
  subscribe(subject: string, handler: BusHandler): () => void;
  /** True while the transport answers (always true in-process). */
  check(signal?: AbortSignal): Promise<boolean>;
  /**
   * Flushes what was published, then closes. Once `signal` aborts, closes at once instead,
   * dropping what was not flushed.
   */
  close(signal?: AbortSignal): Promise<void>;
}
