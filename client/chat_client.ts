import { type Action, clientFrameSchemas } from "../protocol/mod.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { createConnection } from "./connection.ts";
import { RequestError } from "./errors.ts";
import { createFrameRouter } from "./frame_router.ts";
import { createMessageOrder } from "./message_order.ts";
import { createRequests, randomId, type RequestOptions } from "./requests.ts";
import type {
  ActionInput,
  ActionResults,
  ChatClientEvent,
  ChatClientEvents,
  ClientStats,
  ConnectionStatus,
  LatestChatFrame,
} from "./types.ts";

export interface ChatClientOptions {
  /**
   * The service's base URL, `http(s)://` or `ws(s)://` (in a page: `location.origin`); any
   * other, createChatClient throws TypeError.
   */
  url: string | URL;
  /**
   * A JWT, or a function giving one: asked before every connection, so it can be renewed
   * (then a 4401 closing a socket that was open, an expired token, is followed by a new
   * attempt; a 4401 at connect stops the client).
   */
  token: string | (() => string | Promise<string>);
  /** Connects to `/v1/ws/chat/{chatId}/`; absent: `/v1/ws/chats/`, every chat of the user. */
  chatId?: string;
  /**
   * How long a written request waits for its `ack` or `error` (default 10 s; Infinity, or any
   * wait longer than setTimeout's 2^31 - 1 ms: for ever). For a send it is
   * how long a socket may stay silent: see ChatClient.request; so it is for the client's own
   * reads (gap fills, the heartbeat).
   */
  timeoutMs?: number;
  /**
   * How long a ready socket may receive nothing before the client checks it is alive (default 30 s;
   * 0 or Infinity: never). A connection can die without a close (a network changed, a NAT entry
   * timed out); the contract's `ping` gets no reply and browsers cannot see WebSocket pings, so the
   * client asks the cheapest thing the server answers: on `/v1/ws/chat/{id}/` the messages after
   * the last `seq` it has, `limit` 1 (`load_latest_chat`: an empty page, normally); on
   * `/v1/ws/chats/` the same for one chat it knows (not one a read was refused `forbidden` in,
   * until a `chats` list names it again: the user left it), or while it knows none (the user has no
   * chat) `list_chats` before the epoch (an empty page: a list with chats would tell the client of
   * a new chat before its messages come, and they would be taken for history). The answer is
   * neither an event nor a message (the messages come as they do anyway). Any frame received counts
   * as life; no answer within `timeoutMs`, and the socket is left as a silent one (status
   * `reconnecting`, code 1006) and the next connection reads what was missed.
   */
  heartbeatMs?: number;
  backoff?: BackoffOptions;
  /**
   * How long `close()` waits for the server to answer the close frame before it resolves
   * anyway (default 3 s; Infinity: it waits for ever): a hung server or a half-open connection
   * never answers.
   */
  closeTimeoutMs?: number;
  /**
   * How long a new socket may take to open and send its first frame, the page (default 10 s;
   * 0 or Infinity: no limit): one that does not (a hung server, a network gone silent just
   * after the handshake) is left as a lost one (code 1006) and tried again after the backoff;
   * after one whose handshake completed, the next gets twice as long (up to 8 times), until a
   * first frame comes: a page slower to come down a slow link would otherwise never come.
   * A `token` function gets as long to answer, and is asked again after the backoff.
   */
  connectTimeoutMs?: number;
  /** Opens a socket (default: the global WebSocket). */
  webSocket?: (url: string) => WebSocket;
  /** Closes the client when aborted (at once when it already is: no socket is opened). */
  signal?: AbortSignal;
}

/** A typed connection to the chat service that keeps itself connected; see createChatClient. */
export interface ChatClient extends AsyncDisposable {
  readonly status: ConnectionStatus;
  readonly stats: Readonly<ClientStats>;
  /** Listens to an event; returns the function that stops listening. */
  on<E extends ChatClientEvent>(
    event: E,
    listener: (value: ChatClientEvents[E]) => void,
  ): () => void;
  /** Resolves when connected (now or on the next connection); rejects once closed for good. */
  ready(): Promise<void>;
  /**
   * Sends an action with a fresh `request_id`. Resolves with its result when the `ack`
   * comes (see ActionResults); rejects with RequestError (the server's `error` frame, or the
   * frame does not fit the schema), RequestTimeoutError, ConnectionLostError (not for sends)
   * or ClientClosedError. Requests made while disconnected wait for the next connection; then
   * they go one at a time (sends in a line of their own), and one refused with `rate_limited`
   * is written again after a backoff: a backlog written at once could be refused past the
   * server's burst, and past its flood limit close the socket.
   * `send_message` gets a `client_id` unless it has one, and stays in the outbox until its
   * ack: after a lost connection, a `rate_limited` refusal or an `unavailable` answer (a database
   * failing over), it is written again with that same `client_id`; sends go one at a time, each
   * after the reply to the one before, so they are stored in the order they were made. A send with
   * no reply within its timeout is taken as a connection gone silent (no close, no packets): the
   * socket is left as a lost one, and the outbox goes again, in order, on the next; it rejects
   * with RequestTimeoutError only when its frame was still being handed to the network then
   * (`bufferedAmount`: a large upload on a slow uplink, some of whose bytes left during the
   * timeout; when none did, the socket is left as a silent one, unless the runtime was never seen
   * handing a frame over in part: Deno counts a frame whole until all of it has left).
   */
  request<A extends Action>(
    frame: ActionInput<A> & { action: A },
    options?: RequestOptions,
  ): Promise<ActionResults[A]>;
  /** Sends `typing` or `ping` without a request_id if connected (they are not worth queueing). */
  notify(
    frame:
      | (ActionInput<"typing"> & { action: "typing" })
      | (ActionInput<"ping"> & { action: "ping" }),
  ): boolean;
  /**
   * Stops for good: pending requests reject, the socket closes (1000), and frames it still
   * delivers are dropped (no event follows the `closed` status). Resolves once the socket is
   * gone, or after `closeTimeoutMs` when the server does not answer the close.
   */
  close(): Promise<void>;
}

/** A `list_chats` cursor no chat's activity is before. */
const EPOCH = new Date(0).toISOString();

/**
 * Connects to the chat service and stays connected: after a lost network or a 1012 restart
 * it reconnects with exponential backoff and jitter; after 4403 or 4408 it stops, and after
 * 4401 too unless the socket had been open and `token` is a function (close_policy.ts).
 * Every frame it receives is checked against the contract's schemas. After a reconnect, or
 * when a `seq` gap shows, it fetches what is missing (`load_latest_chat` with `after_seq`),
 * so `chat_message` reaches the application once per message, in order; when that read is
 * refused for good, the messages held behind the gap are given anyway, after a `gap` event
 * naming what is missing (see MessageGap). A socket the
 * runtime refuses to open (the WebSocket constructor throws) is tried again like a lost one.
 * One that receives nothing for `heartbeatMs` is checked, and left when it does not answer
 * (see ChatClientOptions.heartbeatMs); so is one where a gap fill's read gets no reply in time.
 */
export function createChatClient(options: ChatClientOptions): ChatClient {
  const listeners = new Map<ChatClientEvent, Set<(value: never) => void>>();
  const retryDelay = (attempt: number) => backoffDelay(attempt, options.backoff);

  const requests = createRequests({
    timeoutMs: options.timeoutMs ?? 10_000,
    retryDelay,
    write: (text) => connection.write(text),
    unclaimed: (frame) => frames.unclaimed(frame),
    handed: () => connection.handed(),
    written: () => connection.written(),
    timedOut: (timeoutMs, handedAtWrite, writtenAtWrite) =>
      connection.leaveSilent(timeoutMs, handedAtWrite, writtenAtWrite),
    answered: () => connection.answered(),
  });

  /** A chat's messages after `afterSeq`, oldest first: a read of the client's own. */
  const readAfter = (chatId: string, afterSeq: number, limit: number) =>
    requests.add({
      action: "load_latest_chat",
      after_seq: afterSeq,
      limit,
      ...(options.chatId === undefined ? { chat_id: chatId } : {}),
    }, { leavesSilent: true }) as Promise<LatestChatFrame>;

  /**
   * The heartbeat's request, answered at the cost of a few indexed reads at most: what follows the
   * last message the client has (nothing, normally) in one page of one. Its answer is taken by
   * it alone (requests.ts matches a page to its ack) and not passed on: the order takes
   * messages from events and its own reads only. The chat endpoint's first page makes its chat
   * known; a chats socket that knows none (or only chats the user left) is a user's with no
   * chat, whose chats are read (none) and none kept: before the epoch, the page is empty, so a
   * chat created meanwhile is not learned from it with a `seq` its messages, on their way, would
   * then be taken as had.
   */
  async function check(): Promise<unknown> {
    const known = order.someChat();
    if (!known) {
      return await requests.add({ action: "list_chats", before: EPOCH }, { leavesSilent: true });
    }
    try {
      return await readAfter(known.chatId, known.seq, 1);
    } catch (error) {
      // a chat the user left is refused: the next check reads another
      order.refused(known.chatId, error);
      throw error;
    }
  }

  const order = createMessageOrder({
    load: (chatId, afterSeq) => readAfter(chatId, afterSeq, 100),
    release: (chatId, message) =>
      emit("chat_message", { type: "chat_message", chat_id: chatId, message }),
    amended: (change) => emit(change.type, change),
    skipped: (gap) => emit("gap", gap),
    retryDelay,
  });

  /** The `closed` status went out: no event may follow it (see close()). */
  let ended = false;

  function emit<E extends ChatClientEvent>(event: E, value: ChatClientEvents[E]): void {
    // a listener that closes the client may do it in the middle of a page being released,
    // or of a frame being routed: what those would still emit is dropped here, in one place
    if (ended) return;
    if (event === "status" && (value as ConnectionStatus).state === "closed") ended = true;
    for (const listener of [...(listeners.get(event) ?? [])]) {
      try {
        (listener as (value: ChatClientEvents[E]) => void)(value);
      } catch (error) {
        // the application's fault, reported as its own; the client carries on
        reportError(error);
      }
    }
  }

  const frames = createFrameRouter({ requests, order, emit });
  // last: it starts connecting (or, given an aborted signal, stops everything above)
  const connection = createConnection({ requests, order, frames, emit, check }, options);

  return {
    get status() {
      return connection.status;
    },
    get stats() {
      return {
        reconnects: connection.reconnects,
        resent: connection.resent,
        duplicates: order.duplicates,
        gapsFilled: order.gapsFilled,
        gapsSkipped: order.gapsSkipped,
      };
    },
    on(event, listener) {
      let set = listeners.get(event);
      if (!set) listeners.set(event, set = new Set());
      const entry = listener as (value: never) => void;
      set.add(entry);
      return () => void set.delete(entry);
    },
    ready: connection.ready,
    request(frame, requestOptions) {
      if (connection.stopped) return Promise.reject(connection.stopped);
      const checked = clientFrameSchemas[frame.action].safeParse(frame);
      if (!checked.success) {
        return Promise.reject(
          new RequestError({
            code: "invalid_payload",
            message: "invalid fields",
            issues: checked.error.issues.map((issue) => ({
              path: issue.path.map(String).join("."),
              message: issue.message,
            })),
          }, frame.action),
        );
      }
      const toSend = frame.action === "send_message" && !("client_id" in frame && frame.client_id)
        ? { ...frame, client_id: randomId() }
        : frame;
      return requests.add(toSend, requestOptions) as Promise<ActionResults[typeof frame.action]>;
    },
    notify(frame) {
      if (!connection.writable) return false;
      if (!clientFrameSchemas[frame.action].safeParse(frame).success) return false;
      return connection.write(JSON.stringify(frame));
    },
    close: connection.close,
    [Symbol.asyncDispose]: connection.close,
  };
}
