import {
  type Action,
  clientFrameSchemas,
  CloseCode,
  type ServerFrame,
  serverFrameSchema,
} from "../protocol/mod.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { reconnectsAfter } from "./close_policy.ts";
import { ClientClosedError, RequestError } from "./errors.ts";
import { createRequests, randomId, type RequestOptions } from "./requests.ts";
import { createMessageOrder } from "./message_order.ts";
import { socketUrl } from "./socket_url.ts";
import type {
  ActionInput,
  ActionResults,
  ChatClientEvent,
  ChatClientEvents,
  ChatsFrame,
  ClientStats,
  ConnectionStatus,
  LatestChatFrame,
} from "./types.ts";

export interface ChatClientOptions {
  /** The service's base URL, `http(s)://` or `ws(s)://` (in a page: `location.origin`). */
  url: string | URL;
  /**
   * A JWT, or a function giving one: asked before every connection, so it can be renewed
   * (then a 4401 closing a socket that was open, an expired token, is followed by a new
   * attempt; a 4401 at connect stops the client).
   */
  token: string | (() => string | Promise<string>);
  /** Connects to `/v1/ws/chat/{chatId}/`; absent: `/v1/ws/chats/`, every chat of the user. */
  chatId?: string;
  /** How long a written request waits for its `ack` or `error` (default 10 s). */
  timeoutMs?: number;
  backoff?: BackoffOptions;
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
   * or ClientClosedError. Requests made while disconnected wait for the next connection.
   * `send_message` gets a `client_id` unless it has one, and stays in the outbox until its
   * ack: after a lost connection it is written again with that same `client_id`.
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
  /** Stops for good: pending requests reject, the socket closes (1000). */
  close(): Promise<void>;
}

const OPEN = 1;

/**
 * Connects to the chat service and stays connected: after a lost network or a 1012 restart
 * it reconnects with exponential backoff and jitter; after 4403 or 4408 it stops, and after
 * 4401 too unless the socket had been open and `token` is a function (close_policy.ts).
 * Every frame it receives is checked against the contract's schemas. After a reconnect, or
 * when a `seq` gap shows, it fetches what is missing (`load_latest_chat` with `after_seq`),
 * so `chat_message` reaches the application once per message, in order.
 */
export function createChatClient(options: ChatClientOptions): ChatClient {
  const openSocket = options.webSocket ?? ((url: string) => new WebSocket(url));
  const listeners = new Map<ChatClientEvent, Set<(value: never) => void>>();
  const waiters = new Set<PromiseWithResolvers<void>>();
  const counts = { reconnects: 0, resent: 0 };
  let status: ConnectionStatus = { state: "connecting", attempt: 0 };
  let socket: WebSocket | undefined;
  let socketGone: Promise<void> = Promise.resolve();
  /** The current socket has had its first frame: the server is ready for actions. */
  let isReady = false;
  let everReady = false;
  let attempt = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let stopped: ClientClosedError | undefined;

  const requests = createRequests({
    timeoutMs: options.timeoutMs ?? 10_000,
    write(text) {
      if (!isReady || socket?.readyState !== OPEN) return false;
      socket.send(text);
      return true;
    },
    unclaimed: unasked,
  });

  const order = createMessageOrder({
    load: (chatId, afterSeq) =>
      requests.add({
        action: "load_latest_chat",
        after_seq: afterSeq,
        limit: 100,
        ...(options.chatId === undefined ? { chat_id: chatId } : {}),
      }) as Promise<LatestChatFrame>,
    release: (chatId, message) =>
      emit("chat_message", { type: "chat_message", chat_id: chatId, message }),
    amended: (amendment) =>
      amendment.type === "message_deleted"
        ? emit("message_deleted", amendment)
        : emit("message_edited", amendment),
    retryDelay: (attempt) => backoffDelay(attempt, options.backoff),
  });

  function emit<E extends ChatClientEvent>(event: E, value: ChatClientEvents[E]): void {
    for (const listener of [...(listeners.get(event) ?? [])]) {
      try {
        (listener as (value: ChatClientEvents[E]) => void)(value);
      } catch (error) {
        // the application's fault, reported as its own; the client carries on
        reportError(error);
      }
    }
  }

  function setStatus(next: ConnectionStatus): void {
    status = next;
    emit("status", next);
  }

  function learnChats(frame: ChatsFrame, fillNewer: boolean): void {
    for (const summary of frame.chats) {
      order.newest(summary.chat_id, summary.last_message?.seq ?? 0, fillNewer);
    }
  }

  /**
   * A page no request took. A `chats` list is the server's news (the user's chats changed);
   * after the first, a `latest_chat` only ever answers a request, and one whose request gave
   * up is dropped (the event is the first page only).
   */
  function unasked(frame: LatestChatFrame | ChatsFrame): void {
    if (frame.type === "chats") emit("chats", frame);
  }

  /** The first frame of a connection: the server is ready, and says where things stand. */
  function opened(frame: LatestChatFrame | ChatsFrame): void {
    isReady = true;
    if (everReady) counts.reconnects++;
    everReady = true;
    // the outbox first, so sends keep their order
    requests.flush();
    setStatus({ state: "open", attempt: 0 });
    if (frame.type === "chats") {
      learnChats(frame, true);
      emit("chats", frame);
    } else if (!order.knows(frame.chat_id)) {
      order.startAfter(frame.chat_id, frame.messages.at(-1)?.seq ?? 0);
      emit("latest_chat", frame);
    } else {
      // a reconnect: what is new in the page, and what came before it when it does not
      // reach back far enough (the page then waits behind a gap)
      order.take(frame.chat_id, frame.messages);
    }
    for (const waiter of waiters) waiter.resolve();
    waiters.clear();
  }

  function handle(frame: ServerFrame): void {
    switch (frame.type) {
      case "ack":
        requests.ack(frame);
        return;
      case "error":
        if (!requests.error(frame)) emit("error", frame);
        return;
      case "chats":
        learnChats(frame, false);
        if (!requests.page(frame)) unasked(frame);
        return;
      case "latest_chat":
        if (!requests.page(frame)) unasked(frame);
        return;
      case "unread_messages":
        requests.unread(frame);
        emit("unread_messages", frame);
        return;
      case "chat_message":
        order.take(frame.chat_id, [frame.message]);
        return;
      case "message_read":
        emit("message_read", frame);
        return;
      case "messages_read":
        emit("messages_read", frame);
        return;
      case "message_deleted":
      case "message_edited":
        order.amend(frame);
        return;
      case "typing":
        emit("typing", frame);
        return;
    }
  }

  function receive(text: string): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return emit("invalid_frame", { text, problem: "not JSON" });
    }
    const parsed = serverFrameSchema.safeParse(value);
    if (!parsed.success) {
      const problem = parsed.error.issues
        .map((issue) => `${issue.path.join(".") || "frame"}: ${issue.message}`)
        .join("; ");
      return emit("invalid_frame", { text, problem });
    }
    const frame = parsed.data;
    if (!isReady && (frame.type === "latest_chat" || frame.type === "chats")) opened(frame);
    else handle(frame);
  }

  async function connect(): Promise<void> {
    retryTimer = undefined;
    if (stopped) return;
    if (!everReady && attempt === 0) setStatus({ state: "connecting", attempt });
    let token: string;
    try {
      token = typeof options.token === "function" ? await options.token() : options.token;
    } catch {
      // a token source that failed may work next time
      return scheduleRetry(CloseCode.tryAgainLater, "no token");
    }
    if (stopped) return;
    const ws = openSocket(socketUrl(options.url, options.chatId, token));
    const gone = Promise.withResolvers<void>();
    socket = ws;
    socketGone = gone.promise;
    isReady = false;
    ws.onmessage = (event) => {
      if (socket === ws && typeof event.data === "string") receive(event.data);
    };
    ws.onerror = () => {};
    ws.onclose = (event) => {
      gone.resolve();
      // Deno reports a connection that just ended as 0; browsers (and the spec) say 1006
      if (socket === ws) closed(event.code || 1006, event.reason);
    };
  }

  function closed(code: number, reason: string): void {
    const wasReady = isReady;
    socket = undefined;
    isReady = false;
    const requeued = requests.lost();
    if (code === CloseCode.frameTooLarge && requeued.length > 0) {
      // the server stops reading at the frame too large; the largest unanswered send is it
      const largest = requeued.reduce((a, b) => (b.text.length > a.text.length ? b : a));
      requeued.splice(requeued.indexOf(largest), 1);
      largest.reject(
        new RequestError({
          code: "payload_too_large",
          message: "the frame is larger than the server takes (closed with 1009)",
        }, "send_message"),
      );
    }
    counts.resent += requeued.length;
    if (stopped) return;
    // a socket taken in had a good token: a 4401 now is its expiry, and a function renews it
    const renewsToken = wasReady && typeof options.token === "function";
    if (!reconnectsAfter(code, { renewsToken })) return stop(new ClientClosedError(code, reason));
    // an open socket starts the backoff over, unless it was closed for flooding: coming back
    // at once would flood again
    if (wasReady && code !== CloseCode.tooMany) attempt = 0;
    scheduleRetry(code, reason);
  }

  function scheduleRetry(code: number, reason: string): void {
    const delay = backoffDelay(attempt, options.backoff);
    attempt++;
    setStatus({ state: "reconnecting", attempt, code, reason, retryInMs: delay });
    retryTimer = setTimeout(() => void connect(), delay);
  }

  function stop(error: ClientClosedError): void {
    if (stopped) return;
    stopped = error;
    order.stop();
    clearTimeout(retryTimer);
    options.signal?.removeEventListener("abort", onAbort);
    requests.rejectAll(error);
    for (const waiter of waiters) waiter.reject(error);
    waiters.clear();
    setStatus({ state: "closed", attempt, code: error.code, reason: error.reason });
  }

  async function close(): Promise<void> {
    stop(new ClientClosedError(1000, "closed by the client"));
    const ws = socket;
    try {
      ws?.close(1000);
    } catch {
      // already closing
    }
    await socketGone;
  }

  const onAbort = () => void close();
  if (options.signal?.aborted) {
    // aborted before it started: closed at once (close() stops synchronously), no socket
    void close();
  } else {
    options.signal?.addEventListener("abort", onAbort, { once: true });
    void connect();
  }

  return {
    get status() {
      return status;
    },
    get stats() {
      return { ...counts, duplicates: order.duplicates, gapsFilled: order.gapsFilled };
    },
    on(event, listener) {
      let set = listeners.get(event);
      if (!set) listeners.set(event, set = new Set());
      const entry = listener as (value: never) => void;
      set.add(entry);
      return () => void set.delete(entry);
    },
    ready() {
      if (stopped) return Promise.reject(stopped);
      if (isReady) return Promise.resolve();
      const waiter = Promise.withResolvers<void>();
      waiters.add(waiter);
      return waiter.promise;
    },
    request(frame, requestOptions) {
      if (stopped) return Promise.reject(stopped);
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
      if (!isReady || socket?.readyState !== OPEN) return false;
      if (!clientFrameSchemas[frame.action].safeParse(frame).success) return false;
      socket.send(JSON.stringify(frame));
      return true;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
