import type { Action } from "../protocol/mod.ts";
import type { ReceivedFrameOf } from "./received_frames.ts";
import { ConnectionLostError, RequestError, RequestTimeoutError } from "./errors.ts";
import { LARGEST_FRAME_BYTES, utf8Bytes } from "./frame_bytes.ts";
import { startTimer } from "./timers.ts";

/** What answers each action besides its `ack`. */
type ReplyKind = "none" | "ack" | "message" | "latest_chat" | "chats" | "unread_messages";

const replies: { [A in Action]: ReplyKind } = {
  ping: "none",
  load_latest_chat: "latest_chat",
  send_message: "message",
  read_message: "ack",
  read_up_to: "ack",
  delete_message: "ack",
  edit_message: "message",
  unread_message: "unread_messages",
  typing: "ack",
  list_chats: "chats",
};

interface Pending {
  requestId: string;
  /** When it was made, among the client's requests: the queue keeps this order. */
  made: number;
  action: Action;
  text: string;
  /** The chat asked about, in lower case as the server names it in its answers. */
  chatId: string | undefined;
  clientId: string | undefined;
  reply: ReplyKind;
  timeoutMs: number;
  /** The socket's bytes handed to the network once it was written (see `handed`). */
  handedAtWrite: number;
  /** The socket's bytes written up to the end of its frame (see `written`). */
  writtenAtWrite: number;
  /** Unanswered in time, it asks whether the socket has gone silent (see AddOptions). */
  leavesSilent: boolean;
  /** A read of the client's own (AddOptions.leavesSilent): never behind the others. */
  own: boolean;
  /**
   * The application's, it waited in the queue: it goes one at a time, and is kept when refused
   * for now.
   */
  waited: boolean;
  /** A send in flight on a socket that was lost, not yet written on another (stats.resent). */
  lost: boolean;
  /** The `unread_messages` that answered it, before its ack. */
  answer: ReceivedFrameOf<"unread_messages"> | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  settle(outcome: { value: unknown } | { error: unknown }): void;
}

export interface RequestOptions {
  /** How long the request waits for its reply once written (default: the client's). */
  timeoutMs?: number;
  /** Gives up on the request (it rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** How the client adds a request of its own. */
export interface AddOptions extends RequestOptions {
  /**
   * A read of the client's own (a gap fill, the chats catch-up, the heartbeat) unanswered in
   * time asks `timedOut` whether the socket has gone silent, as a send does; when it is left,
   * the read rejects with ConnectionLostError (the next connection reads again), else with
   * RequestTimeoutError. An application's request only rejects: its own timeout is its to set.
   */
  leavesSilent?: boolean;
}

/**
 * The requests of one client: waiting to be written, then in flight until their reply. A
 * `send_message` is the outbox: a lost connection puts it back in the queue, to be written
 * again (same `client_id`) on the next one. Timers run only while a request is in flight.
 *
 * A page (`latest_chat`, `chats`) carries no `request_id`. The server handles a socket's
 * frames one at a time and sends an action's page just before its `ack`, and the `chats` it
 * pushes unasked (the user's chats changed) go through that same queue (ws/connection.ts),
 * so a page is held until the next `ack` or `error` says whose it is: the page of that ack's
 * request, or nobody's (`unclaimed`). A request that timed out or was aborted after it was
 * written stays known as given up until the server answers it, so that its late page is
 * dropped rather than taken for another request's, or for a pushed list.
 *
 * A send refused with `rate_limited` or `unavailable` (a dependency down, a database failing
 * over) stays in the outbox too (the same `client_id` makes a second try safe): it goes back to its
 * place in the queue, and the outbox waits a backoff (or the next socket). Sends are written one at a
 * time, each after the reply to the one before: written at once they could be more frames than the
 * server's burst, and one written behind a send that is then refused may be taken (the budget
 * refilled meanwhile) and stored before it. Other requests do not wait for sends, only out a refusal's backoff when they waited in the
 * queue themselves. Other requests that waited in the queue (made while disconnected, or behind one
 * that did) are written one at a time too, and kept when refused with `rate_limited` (a refusal at
 * the door: the server did nothing, so a second try is safe): a backlog written at once would be
 * refused past the server's burst, and past its limit of refusals in a row (WS_FLOOD_LIMIT) the
 * socket closed, losing the answers of those taken. An application's request written at once is the
 * caller's to try again. The client's own reads (AddOptions) wait behind none of them. A send whose
 * reply does not come in time is the connection's to judge (`timedOut`): a socket gone silent is
 * left, and the send stays in the outbox; so is one of the client's own reads (AddOptions).
 */
export function createRequests(deps: {
  /** Writes a frame; false when there is no open socket (the request then waits). */
  write: (text: string) => boolean;
  timeoutMs: number;
  /** How long to wait before writing again after refused send `attempt` (0 for the first). */
  retryDelay: (attempt: number) => number;
  /** A page held for the next ack that turned out to answer no request (a pushed `chats`). */
  unclaimed: (frame: Page) => void;
  /** Bytes of the socket's frames handed to the network so far. */
  handed: () => number;
  /** Bytes of the socket's frames written so far. */
  written: () => number;
  /**
   * A written send (or a read of the client's own) got no reply within `timeoutMs`
   * (`handedAtWrite`: `handed()` once it was written; `writtenAtWrite`: `written()` then, where
   * its frame ends): true when the connection takes its socket for dead and leaves it (lost()
   * then puts the send back in the outbox, and rejects the read as lost); false: it gives up.
   */
  timedOut: (timeoutMs: number, handedAtWrite: number, writtenAtWrite: number) => boolean;
  /** A request in flight got its reply (an `ack` or `error`) in time. */
  answered: () => void;
}) {
  const queue: Pending[] = [];
  const inflight = new Map<string, Pending>();
  /** Requests written, then given up on (timeout, abort): the server still answers them. */
  const givenUp = new Map<string, Action>();
  /** The last page received: the next `ack` says which request it answers, if any. */
  let held: Page | undefined;
  let counter = 0;
  /** While set, the server refused a send for now: the queue waits for this timer. */
  let resting: ReturnType<typeof setTimeout> | undefined;
  /** Sends refused with `rate_limited` since the last one acknowledged: the backoff's exponent. */
  let refusals = 0;
  /** Sends written again after their socket was lost (stats.resent). */
  let resent = 0;
  const prefix = randomId().slice(0, 8);

  /** Settles a request that will have no answer for the caller; a written one stays known. */
  function giveUp(pending: Pending, error: unknown) {
    if (inflight.has(pending.requestId)) givenUp.set(pending.requestId, pending.action);
    pending.settle({ error });
    // a send given up lets the next one in the outbox go
    flush();
  }

  /** True when a request written on this socket may still be answered with `reply`. */
  function awaits(reply: ReplyKind): boolean {
    for (const pending of inflight.values()) if (pending.reply === reply) return true;
    for (const action of givenUp.values()) if (replies[action] === reply) return true;
    return false;
  }

  /** The held page, when the frame that follows it is the reply of a request for `reply`. */
  function claim(reply: ReplyKind): Page | undefined {
    const page = held;
    held = undefined;
    if (page?.type === reply) return page;
    if (page) deps.unclaimed(page);
    return undefined;
  }

  function remove(pending: Pending) {
    clearTimeout(pending.timer);
    inflight.delete(pending.requestId);
    const index = queue.indexOf(pending);
    if (index >= 0) queue.splice(index, 1);
  }

  /** Puts requests back in the queue, which stays in the order they were made. */
  function requeue(...again: Pending[]): void {
    queue.push(...again);
    queue.sort((a, b) => a.made - b.made);
  }

  /**
   * Whether a request in the queue waits: while a refusal is waited out, and while another
   * of its line is in flight: a send, for a send; another request that waited, for the others.
   * The outbox goes one send at a time, as a frame written behind a refused one may be taken
   * (the server's budget refilled meanwhile) and stored first; the others too, so that a
   * backlog is not more frames than the server's burst.
   */
  function queuedWaits(queued: Pending): boolean {
    // the heartbeat's check, a gap fill's read: behind a backlog, a socket gone silent would be
    // noticed only once every request of it had timed out in turn
    if (queued.own) return false;
    if (resting !== undefined) return true;
    const send = queued.action === "send_message";
    for (const pending of inflight.values()) {
      if ((pending.action === "send_message") === send && (send || pending.waited)) return true;
    }
    return false;
  }

  /** Writes what waits, in order, while the socket takes it; one at a time in each line. */
  function flush(): void {
    for (const pending of [...queue]) {
      if (queuedWaits(pending)) continue;
      if (!write(pending)) return;
      const index = queue.indexOf(pending);
      if (index >= 0) queue.splice(index, 1);
    }
  }

  /**
   * A send, or a request that waited, refused for now: back in the queue, written again after a
   * backoff.
   */
  function refused(pending: Pending): void {
    clearTimeout(pending.timer);
    inflight.delete(pending.requestId);
    requeue(pending);
    if (resting !== undefined) return;
    resting = setTimeout(() => {
      resting = undefined;
      flush();
    }, deps.retryDelay(refusals++));
  }

  function endRest(): void {
    clearTimeout(resting);
    resting = undefined;
  }

  function write(pending: Pending): boolean {
    if (!deps.write(pending.text)) return false;
    // counted once written again: one lost with its socket may never be (the client stopped)
    if (pending.lost) resent++;
    pending.lost = false;
    pending.handedAtWrite = deps.handed();
    pending.writtenAtWrite = deps.written();
    if (pending.reply === "none") {
      pending.settle({ value: undefined });
      return true;
    }
    inflight.set(pending.requestId, pending);
    pending.timer = startTimer(() => {
      // the outbox's send unanswered: the socket may have gone silent, and each send behind
      // it would wait its own timeout in turn; a read of the client's own would be made again
      // and again on it
      const { timeoutMs, handedAtWrite, writtenAtWrite } = pending;
      if (pending.leavesSilent && deps.timedOut(timeoutMs, handedAtWrite, writtenAtWrite)) return;
      giveUp(pending, new RequestTimeoutError(pending.action, pending.timeoutMs, pending.clientId));
    }, pending.timeoutMs);
    return true;
  }

  function resolveAck(
    pending: Pending,
    frame: ReceivedFrameOf<"ack">,
    page: Page | undefined,
  ): unknown {
    switch (pending.reply) {
      case "none":
      case "ack":
        return undefined;
      case "message":
        if (!frame.message) throw new Error(`${pending.action}: ack without the message`);
        return frame.message;
      case "latest_chat":
        if (
          page?.type !== "latest_chat" ||
          (pending.chatId !== undefined && page.chat_id !== pending.chatId)
        ) {
          throw new Error(`${pending.action}: ack without latest_chat`);
        }
        return page;
      case "chats":
        if (page?.type !== "chats") throw new Error(`${pending.action}: ack without chats`);
        return page;
      case "unread_messages":
        if (!pending.answer) throw new Error(`${pending.action}: ack without unread_messages`);
        return pending.answer;
    }
  }

  return {
    /** Queues a frame with a fresh request_id; it is written at once when a socket is open. */
    add(
      frame: {
        action: Action;
        chat_id?: string | undefined;
        client_id?: string | undefined;
        [field: string]: unknown;
      },
      options: AddOptions = {},
    ): Promise<unknown> {
      if (options.signal?.aborted) return Promise.reject(options.signal.reason);
      const requestId = `${prefix}-${counter + 1}`;
      const text = JSON.stringify({ ...frame, request_id: requestId });
      if (utf8Bytes(text) > LARGEST_FRAME_BYTES) {
        return Promise.reject(
          new RequestError({
            code: "payload_too_large",
            message: `the frame is larger than any server takes (${LARGEST_FRAME_BYTES} bytes)`,
          }, frame.action),
        );
      }
      counter++;
      const { promise, resolve, reject } = Promise.withResolvers<unknown>();
      const onAbort = () => giveUp(pending, options.signal?.reason);
      const pending: Pending = {
        requestId,
        made: counter,
        action: frame.action,
        text,
        // the server answers with the chat's canonical id, lower case; a uuid may come in
        // capitals (Swift's uuidString), which the contract takes
        chatId: frame.chat_id?.toLowerCase(),
        clientId: frame.client_id,
        reply: replies[frame.action],
        timeoutMs: options.timeoutMs ?? deps.timeoutMs,
        handedAtWrite: 0,
        writtenAtWrite: 0,
        leavesSilent: frame.action === "send_message" || options.leavesSilent === true,
        own: options.leavesSilent === true,
        waited: false,
        lost: false,
        answer: undefined,
        timer: undefined,
        settle(outcome) {
          remove(pending);
          options.signal?.removeEventListener("abort", onAbort);
          if ("error" in outcome) reject(outcome.error);
          else resolve(outcome.value);
        },
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      // a send goes behind the sends in the outbox, and behind the one in flight (see
      // queuedWaits); another request of the application's behind the others of the
      // application's; a read of the client's own behind none
      const send = frame.action === "send_message";
      const behind = !pending.own &&
        queue.some((queued) => !queued.own && (queued.action === "send_message") === send);
      const waits = behind || (send && queuedWaits(pending));
      if (waits || !write(pending)) {
        pending.waited = !pending.own;
        queue.push(pending);
      }
      return promise;
    },

    flush,

    /**
     * Settles the request an ack is for, with the page held before it when it answers that
     * action; false when none waits for it (a request given up on: its page is dropped).
     */
    ack(frame: ReceivedFrameOf<"ack">): boolean {
      const page = claim(replies[frame.action]);
      givenUp.delete(frame.request_id);
      const pending = inflight.get(frame.request_id);
      if (!pending) return false;
      deps.answered();
      if (pending.action === "send_message" || pending.waited) refusals = 0;
      try {
        pending.settle({ value: resolveAck(pending, frame, page) });
      } catch (error) {
        pending.settle({ error });
      }
      flush();
      return true;
    },

    /** Rejects the request an error frame is for; false when none waits for it. */
    error(frame: ReceivedFrameOf<"error">): boolean {
      // an error comes with no page: one held is nobody's
      claim("none");
      if (frame.request_id !== undefined) givenUp.delete(frame.request_id);
      const pending = frame.request_id === undefined ? undefined : inflight.get(frame.request_id);
      if (!pending) return false;
      deps.answered();
      const send = pending.action === "send_message";
      // a send answered unavailable (a database failover) is kept too: its client_id makes
      // the second try safe, which the contract asks for
      const forNow = frame.code === "rate_limited" || (send && frame.code === "unavailable");
      if ((send || pending.waited) && forNow) refused(pending);
      else pending.settle({ error: new RequestError(frame, pending.action) });
      flush();
      return true;
    },

    /**
     * Holds a page for the `ack` that comes next (a page held before it was nobody's). False
     * when no request written on this socket may be answered by one: the page is news.
     */
    page(frame: Page): boolean {
      const before = held;
      held = undefined;
      if (before) deps.unclaimed(before);
      if (!awaits(frame.type)) return false;
      held = frame;
      return true;
    },

    /**
     * Notes an `unread_messages`: it answers every `unread_message` of its chat in flight, but
     * is also the news everyone gets, so it is never kept back.
     */
    unread(frame: ReceivedFrameOf<"unread_messages">): void {
      for (const pending of inflight.values()) {
        if (pending.reply !== "unread_messages") continue;
        if (pending.chatId === undefined || pending.chatId === frame.chat_id) {
          pending.answer = frame;
        }
      }
    },

    /**
     * The socket is gone: sends in flight go back to the queue (the outbox) in the order they
     * were made, everything else in flight is rejected. Returns the sends put back.
     */
    lost(): Array<{ text: string; reject: (error: unknown) => void }> {
      // the old socket's answers will not come; a pushed list held is dropped too, as the
      // next connection's first frame is the list again
      held = undefined;
      givenUp.clear();
      // a new socket has a rate budget of its own
      endRest();
      const requeued: Pending[] = [];
      for (const pending of [...inflight.values()]) {
        clearTimeout(pending.timer);
        inflight.delete(pending.requestId);
        pending.answer = undefined;
        if (pending.action === "send_message") {
          pending.lost = true;
          requeued.push(pending);
        } else pending.settle({ error: new ConnectionLostError(pending.action) });
      }
      requeue(...requeued);
      return requeued.map((pending) => ({
        text: pending.text,
        reject: (error: unknown) => pending.settle({ error }),
      }));
    },

    /** Rejects everything, queued or in flight. */
    rejectAll(error: unknown): void {
      endRest();
      held = undefined;
      givenUp.clear();
      for (const pending of [...inflight.values(), ...queue]) pending.settle({ error });
    },

    /** Sends written again after their socket was lost, with their `client_id`. */
    get resent(): number {
      return resent;
    },

    /** Requests not yet settled. */
    get size(): number {
      return queue.length + inflight.size;
    },
  };
}

export type Requests = ReturnType<typeof createRequests>;

/** A frame that answers a request but carries no `request_id`. */
type Page = ReceivedFrameOf<"latest_chat" | "chats">;

/** A random hex id; crypto.randomUUID needs a secure context, getRandomValues does not. */
export function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
