import { ChatError } from "../chat/errors.ts";
import type { BusHandler } from "./bus.ts";

/** One handler's place in the router; `first` is true when it is the first for its pattern. */
export interface RouterEntry {
  readonly first: boolean;
  /** Idempotent; `last` is true when this removal left the pattern with no handlers. */
  remove(): { last: boolean };
}

/** The in-process subscription table both bus implementations deliver through. */
export interface LocalRouter {
  /** Registers `handler` for `pattern` (NATS wildcards allowed); throws on an invalid pattern. */
  add(pattern: string, handler: BusHandler): RouterEntry;
  /** Hands a published payload to every handler whose pattern matches `subject`. */
  dispatch(subject: string, payload: Uint8Array): void;
  /** Hands a payload to the handlers of `pattern` only (what a transport subscription saw). */
  deliver(pattern: string, subject: string, payload: Uint8Array): void;
}

/** Options of {@link createLocalRouter}. */
export interface LocalRouterOptions {
  /**
   * Told when a handler throws, with a ChatError `internal` whose cause is what was thrown.
   * Defaults to `reportError`, the way an `EventTarget` listener's exception is reported.
   */
  onError?: (error: unknown) => void;
}

interface Registration {
  readonly handler: BusHandler;
  /** Order of registration; a payload skips handlers registered after it was published. */
  readonly id: number;
}

interface Pattern {
  /** Split only for wildcard patterns, which are matched token by token. */
  readonly tokens: readonly string[];
  /** A Set, so removing during a dispatch is O(1) and cannot skip a neighbour. */
  readonly registrations: Set<Registration>;
}

interface Pending {
  /** `undefined` for a local publish (every matching pattern), else one pattern's handlers. */
  readonly pattern: string | undefined;
  readonly subject: string;
  readonly payload: Uint8Array;
  readonly horizon: number;
}

const subjectShape = /^[^.\s]+(?:\.[^.\s]+)*$/;
const wildcardToken = /(?:^|\.)[*>](?:\.|$)/;
const innerTail = /(?:^|\.)>\./;

/** Throws a plain Error unless `subject` is a subject one can publish on (no wildcards). */
export function assertPublishSubject(subject: string): void {
  if (!subjectShape.test(subject) || wildcardToken.test(subject)) {
    throw new Error(`invalid bus subject to publish on: ${JSON.stringify(subject)}`);
  }
}

/** Throws a plain Error unless `pattern` is a subject one can subscribe to. */
export function assertSubscribePattern(pattern: string): void {
  if (!subjectShape.test(pattern) || innerTail.test(pattern)) {
    throw new Error(`invalid bus subject to subscribe to: ${JSON.stringify(pattern)}`);
  }
}

/**
 * Creates the reference-counted table of local handlers. Exact subjects are found in one Map
 * lookup; wildcard patterns, which are few (such as "every chat"), are tested one by one.
 * Delivery is synchronous; a payload published from inside a handler waits until the current
 * one has reached every handler, so all handlers see payloads in the same order.
 */
export function createLocalRouter(options: LocalRouterOptions = {}): LocalRouter {
  const onError = options.onError ?? reportError;
  const exact = new Map<string, Pattern>();
  const wildcard = new Map<string, Pattern>();
  const pending: Pending[] = [];
  let nextId = 0;
  let delivering = false;

  function call(registrations: Set<Registration>, item: Pending): void {
    for (const registration of registrations) {
      if (registration.id >= item.horizon) continue;
      try {
        registration.handler(item.payload, item.subject);
      } catch (cause) {
        report(new ChatError("internal", `a bus handler for ${item.subject} threw`, { cause }));
      }
    }
  }

  function report(error: unknown): void {
    try {
      onError(error);
    } catch (failure) {
      // A broken reporter must not stop the payloads queued behind this one.
      reportError(failure);
    }
  }

  function run(item: Pending): void {
    if (item.pattern !== undefined) {
      const target = exact.get(item.pattern) ?? wildcard.get(item.pattern);
      if (target) call(target.registrations, item);
      return;
    }
    const target = exact.get(item.subject);
    if (target) call(target.registrations, item);
    if (wildcard.size === 0) return;
    const tokens = item.subject.split(".");
    for (const pattern of wildcard.values()) {
      if (matches(pattern.tokens, tokens)) call(pattern.registrations, item);
    }
  }

  function enqueue(item: Pending): void {
    pending.push(item);
    if (delivering) return;
    delivering = true;
    try {
      for (let next = pending.shift(); next; next = pending.shift()) run(next);
    } finally {
      delivering = false;
    }
  }

  return {
    add(pattern, handler) {
      assertSubscribePattern(pattern);
      const table = wildcardToken.test(pattern) ? wildcard : exact;
      let entry = table.get(pattern);
      const first = entry === undefined;
      if (!entry) {
        entry = { tokens: table === wildcard ? pattern.split(".") : [], registrations: new Set() };
        table.set(pattern, entry);
      }
      const owner = entry;
      const registration: Registration = { handler, id: nextId++ };
      owner.registrations.add(registration);
      return {
        first,
        remove() {
          if (!owner.registrations.delete(registration)) return { last: false };
          if (owner.registrations.size > 0) return { last: false };
          table.delete(pattern);
          return { last: true };
        },
      };
    },
    dispatch(subject, payload) {
      enqueue({ pattern: undefined, subject, payload, horizon: nextId });
    },
    deliver(pattern, subject, payload) {
      enqueue({ pattern, subject, payload, horizon: nextId });
    },
  };
}

/** NATS matching: `*` is exactly one token, `>` one or more trailing tokens. */
function matches(pattern: readonly string[], subject: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const token = pattern[i];
    if (token === ">") return subject.length > i;
    if (i >= subject.length) return false;
    if (token !== "*" && token !== subject[i]) return false;
  }
  return pattern.length === subject.length;
}
