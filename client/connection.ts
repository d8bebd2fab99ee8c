import { CloseCode } from "../protocol/mod.ts";
import { backoffDelay } from "./backoff.ts";
import type { ChatClientOptions } from "./chat_client.ts";
import { reconnectsAfter } from "./close_policy.ts";
import { ClientClosedError, RequestError } from "./errors.ts";
import type { Emit, FrameRouter } from "./frame_router.ts";
import { utf8Bytes } from "./frame_bytes.ts";
import { createHeartbeat } from "./heartbeat.ts";
import type { MessageOrder } from "./message_order.ts";
import type { Requests } from "./requests.ts";
import { socketUrl } from "./socket_url.ts";
import { startTimer } from "./timers.ts";
import type { ChatsFrame, ConnectionStatus, LatestChatFrame } from "./types.ts";

const OPEN = 1;
/** Closes after which the next connection waits longer than the last (see `closed`). */
const GROWING_BACKOFF_CODES: ReadonlySet<number> = new Set([
  CloseCode.tooMany,
  CloseCode.tryAgainLater,
  CloseCode.internal,
]);
/**
 * How many times longer than `connectTimeoutMs` the first frame is waited for at most, after
 * sockets that opened and whose first frame did not come in time (see connect()).
 */
const SLOW_PAGE_GROWTH_LIMIT = 8;
/**
 * How long a connection that opened must last for the backoff to start over when it goes: one
 * lost sooner (a middlebox or server that drops the connection on the outbox's first send, or
 * right after the page) waits longer than the attempt before it, or the client would open a
 * socket, write the outbox again and lose it, several times a second for good.
 */
export const STEADY_MS = 5_000;

/**
 * The client's one socket at a time, from the first attempt until it stops for good. A
 * socket is ready for actions once its first frame (a page) has come: then the outbox is
 * written and `ready()` resolves. When it closes, the close code says whether to try again
 * (close_policy.ts), after a backoff delay; when not, or when closed or aborted, the client
 * stops: requests and `ready()` reject with ClientClosedError and `status` is `closed`. While a
 * socket is ready and nothing comes on it for `heartbeatMs`, `check` asks the server something
 * (heartbeat.ts); a socket that does not answer in time is left as silent (leaveSilent), and so
 * is one whose first frame does not come within `connectTimeoutMs` of its creation.
 * It starts connecting at once (not when `signal` is already aborted); it throws TypeError at
 * once when `url` cannot be made into a socket URL (see socketUrl).
 */
export function createConnection(
  deps: {
    requests: Requests;
    order: MessageOrder;
    frames: FrameRouter;
    emit: Emit;
    /** The heartbeat's request: the cheapest one the server answers on this endpoint. */
    check: () => Promise<unknown>;
  },
  options: Pick<
    ChatClientOptions,
    | "url"
    | "token"
    | "chatId"
    | "backoff"
    | "webSocket"
    | "signal"
    | "closeTimeoutMs"
    | "heartbeatMs"
    | "connectTimeoutMs"
  >,
) {
  const { requests, order, frames, emit } = deps;
  const heartbeat = createHeartbeat(deps, { heartbeatMs: options.heartbeatMs ?? 30_000 });
  const openSocket = options.webSocket ?? ((url: string) => new WebSocket(url));
  // a URL that cannot be made into a socket URL never will be: the caller hears it at once
  socketUrl(options.url, options.chatId, "");
  const waiters = new Set<PromiseWithResolvers<void>>();
  const counts = { reconnects: 0 };
  let status: ConnectionStatus = { state: "connecting", attempt: 0 };
  let socket: WebSocket | undefined;
  let socketGone: Promise<void> = Promise.resolve();
  /** The current socket has had its first frame: the server is ready for actions. */
  let isReady = false;
  /**
   * The largest frame written on the current socket, in UTF-8 bytes (what the server's limit
   * counts), given-up requests' included: after a 1009 it says which send was too large.
   */
  let largestWritten = 0;
  /** Every frame written on the current socket, in UTF-8 bytes (as `bufferedAmount` counts). */
  let bytesWritten = 0;
  /**
   * Where the current socket's frames not yet seen handed over whole end, in bytes written, and
   * where the last one seen so ended: handed() between two such ends is a frame leaving in part.
   */
  let frameEnds: number[] = [];
  let wholeUpTo = 0;
  /**
   * The runtime was seen handing a frame to the network in part (`bufferedAmount` falling as
   * its bytes leave). Deno's counts a frame whole until all of it has left: there, a large
   * upload on a slow uplink shows no byte leaving, as a stuck one does.
   */
  let leavesInPart = false;
  let everReady = false;
  /** Failed attempts since the last connection that opened and lasted: the backoff's exponent. */
  let attempt = 0;
  /** `attempt` when the current socket opened, and when (monotonic): see STEADY_MS. */
  let attemptAtOpen = 0;
  let openedAt = 0;
  /** Connections closed with 4429, 1013 or 1011 in a row after they had opened. */
  let floods = 0;
  /** Connections left as silent since a reply last came in time: the backoff's exponent then. */
  let silences = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Runs from a socket's creation until its first frame: see connect(). */
  let firstFrameTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Sockets in a row whose handshake completed but whose first frame did not come within the
   * time given (a page slower to come down a slow link than `connectTimeoutMs`): the next is
   * given twice as long, up to SLOW_PAGE_GROWTH_LIMIT times. Back to 0 once a first frame comes.
   */
  let slowPages = 0;
  let stopped: ClientClosedError | undefined;

  function setStatus(next: ConnectionStatus): void {
    status = next;
    emit("status", next);
  }

  /** The first frame of a connection: the server is ready, and says where things stand. */
  function opened(frame: LatestChatFrame | ChatsFrame): void {
    clearTimeout(firstFrameTimer);
    isReady = true;
    slowPages = 0;
    if (everReady) counts.reconnects++;
    everReady = true;
    attemptAtOpen = attempt;
    openedAt = performance.now();
    attempt = 0;
    // the outbox first, so sends keep their order
    requests.flush();
    setStatus({ state: "open", attempt });
    // a listener may have closed the client: nothing more starts (a heartbeat started now would
    // run on after close(), when the server never answers the close)
    if (stopped) return;
    heartbeat.start();
    frames.opened(frame);
    for (const waiter of waiters) waiter.resolve();
    waiters.clear();
  }

  function receive(text: string): void {
    // any frame is life, one that does not fit the contract too
    heartbeat.received();
    const frame = frames.parse(text);
    if (!frame) return;
    if (!isReady && (frame.type === "latest_chat" || frame.type === "chats")) opened(frame);
    else frames.route(frame);
  }

  /**
   * The token from the `token` function: one that does not answer within
   * `connectTimeoutMs` is taken as failed (a token service that went silent would hold the
   * client connecting for good), and asked again after the backoff.
   */
  async function askToken(source: () => string | Promise<string>): Promise<string> {
    const asked = Promise.resolve().then(source);
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    if (!(timeoutMs > 0)) return await asked;
    const late = Promise.withResolvers<never>();
    // the first frame's timer, which close() clears, is not set until the socket is opened
    firstFrameTimer = startTimer(
      () => late.reject(new Error(`no token within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      return await Promise.race([asked, late.promise]);
    } finally {
      clearTimeout(firstFrameTimer);
    }
  }

  async function connect(): Promise<void> {
    retryTimer = undefined;
    if (stopped) return;
    if (!everReady && attempt === 0) setStatus({ state: "connecting", attempt });
    let token: string;
    try {
      // a token given as it is opens the socket at once, before createChatClient returns
      token = typeof options.token === "function" ? await askToken(options.token) : options.token;
    } catch {
      // a token source that failed may work next time, unless the client closed meanwhile
      if (!stopped) scheduleRetry(CloseCode.tryAgainLater, "no token");
      return;
    }
    if (stopped) return;
    let ws: WebSocket;
    try {
      ws = openSocket(socketUrl(options.url, options.chatId, token));
    } catch (error) {
      // a browser refuses some sockets outright (a blocked port, ws:// from an https page):
      // the reason is the application's to see in the status; the backoff keeps it from spinning
      scheduleRetry(1006, `the socket could not be opened: ${error}`);
      return;
    }
    const gone = Promise.withResolvers<void>();
    socket = ws;
    socketGone = gone.promise;
    isReady = false;
    largestWritten = 0;
    bytesWritten = 0;
    frameEnds = [];
    wholeUpTo = 0;
    ws.onmessage = (event) => {
      // frames still come after close() until the close event (Deno delivers them while the
      // socket is CLOSING): a client stopped takes none, nor a socket it has left
      if (!stopped && socket === ws && typeof event.data === "string") receive(event.data);
    };
    ws.onerror = () => {};
    let handshaken = false;
    ws.onopen = () => {
      handshaken = true;
    };
    ws.onclose = (event) => {
      gone.resolve();
      // Deno reports a connection that just ended as 0; browsers (and the spec) say 1006
      if (socket === ws) closed(event.code || 1006, event.reason);
    };
    // the heartbeat runs only once a socket is ready: one whose handshake or first frame never
    // comes (a hung server, a network gone silent just after the handshake) would otherwise
    // hold the client, its outbox and ready() for as long as the TCP connection lasts
    const givenMs = options.connectTimeoutMs ?? 10_000;
    // 0 is no limit, as Infinity is
    if (!(givenMs > 0)) return;
    // a page that takes longer than that to come down a slow link would be given up on at every
    // attempt, for good, each time after most of it came: after a socket that opened, the next
    // waits longer
    const timeoutMs = givenMs * Math.min(2 ** slowPages, SLOW_PAGE_GROWTH_LIMIT);
    firstFrameTimer = startTimer(() => {
      if (socket !== ws || isReady) return;
      if (handshaken) slowPages++;
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
      closed(1006, `no first frame within ${timeoutMs} ms: the connection is taken for dead`);
    }, timeoutMs);
  }

  function closed(code: number, reason: string, leftSilent = false): void {
    const wasReady = isReady;
    socket = undefined;
    isReady = false;
    clearTimeout(firstFrameTimer);
    heartbeat.stop();
    const requeued = requests.lost();
    if (code === CloseCode.frameTooLarge) rejectTooLarge(requeued);
    if (stopped) return;
    // a socket taken in had a good token: a 4401 now is its expiry, and a function renews it
    const renewsToken = wasReady && typeof options.token === "function";
    if (!reconnectsAfter(code, { renewsToken })) return stop(new ClientClosedError(code, reason));
    // an open socket started the backoff over, but one closed for flooding (4429), by a
    // server that cannot keep up (1013: a slow reader let go, too many events held), or by one
    // that failed (1011), waits longer than the one closed for it before: coming back at once
    // would do it again. Failures before it opened do not count
    if (wasReady && GROWING_BACKOFF_CODES.has(code)) {
      attempt = floods++;
    } else if (wasReady) {
      floods = 0;
      // one lost before it was steady counts on from the attempts before it (see STEADY_MS)
      if (performance.now() - openedAt < STEADY_MS) attempt = attemptAtOpen;
    }
    // so does one left because no reply came in time, until one comes in time: a server alive
    // but slower than timeoutMs would otherwise be reconnected to at once, again and again,
    // each time with the outbox written again
    if (leftSilent) attempt = silences++;
    scheduleRetry(code, reason);
  }

  /**
   * After a 1009: the server stops reading at the frame too large, the largest written on the
   * socket. A send still waiting is it only when none larger was written; one larger may have
   * been given up already (it timed out while a big upload crept along), and then every send
   * still waiting is innocent and goes out again.
   */
  function rejectTooLarge(requeued: ReturnType<Requests["lost"]>): void {
    const sizes = requeued.map((send) => utf8Bytes(send.text));
    const largestSize = Math.max(0, ...sizes);
    if (requeued.length === 0 || largestSize < largestWritten) return;
    const [largest] = requeued.splice(sizes.indexOf(largestSize), 1);
    largest?.reject(
      new RequestError({
        code: "payload_too_large",
        message: "the frame is larger than the server takes (closed with 1009)",
      }, "send_message"),
    );
  }

  /** Bytes of the current socket's frames handed to the network so far. */
  function handed(): number {
    const bytes = bytesWritten - (socket?.bufferedAmount ?? 0);
    while (frameEnds[0] !== undefined && frameEnds[0] <= bytes) wholeUpTo = frameEnds.shift()!;
    // past the end of the last frame seen handed over whole: the next one is leaving in part
    if (bytes > wholeUpTo) leavesInPart = true;
    return bytes;
  }

  /**
   * A send (or a read of the client's own: a gap fill, the heartbeat) written on the socket got
   * no reply within `timeoutMs`; `handedAtWrite` is what handed() said once it was written, and
   * `writtenAtWrite` where its frame ends in the bytes written. Unless the socket is still
   * handing its frame, or those before it, to the network (a large upload on a slow uplink
   * outlasts its timeout: bytes wait, and some left meanwhile), it has gone silent (no close
   * frame, packets dropped; also in the middle of an upload, whose bytes then wait and none
   * leave): it is left as a lost one, so that the outbox goes again, in order, on the next
   * connection, after one timeout rather than one per send waiting behind it. False when it is
   * kept. Where bytes are not seen leaving in part (Deno), waiting bytes keep the socket: none
   * left may be a frame still leaving. Bytes written after its frame had left keep nothing: they
   * did not hold it back (a typing frame or the heartbeat's check written just before the
   * timeout, which the runtime counts as waiting until a later turn of the event loop, would
   * otherwise have the send rejected and the silent socket kept).
   */
  function leaveSilent(timeoutMs: number, handedAtWrite: number, writtenAtWrite: number): boolean {
    const ws = socket;
    if (!ws || !isReady) return false;
    const leaving = handed() > handedAtWrite || !leavesInPart;
    if (ws.bufferedAmount > 0 && leaving && handed() < writtenAtWrite) return false;
    try {
      ws.close(1000);
    } catch {
      // already closing
    }
    closed(1006, `no reply within ${timeoutMs} ms: the connection is taken for dead`, true);
    return true;
  }

  function scheduleRetry(code: number, reason: string): void {
    const delay = backoffDelay(attempt, options.backoff);
    attempt++;
    // set before the status goes out: a listener that closes the client then clears it
    retryTimer = setTimeout(() => void connect(), delay);
    setStatus({ state: "reconnecting", attempt, code, reason, retryInMs: delay });
  }

  function stop(error: ClientClosedError): void {
    if (stopped) return;
    stopped = error;
    order.stop();
    heartbeat.stop();
    clearTimeout(retryTimer);
    clearTimeout(firstFrameTimer);
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
    // Deno's WebSocket puts no time limit on the closing handshake: a peer that never answers
    // (a hung server, a connection half-open after a network change) would hold close() and
    // `await using` forever. The client has stopped already; only the socket's end is awaited
    let timer: ReturnType<typeof setTimeout> | undefined;
    const given = new Promise<void>((resolve) => {
      timer = startTimer(resolve, options.closeTimeoutMs ?? 3_000);
    });
    await Promise.race([socketGone, given]);
    clearTimeout(timer);
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
    get status(): ConnectionStatus {
      return status;
    },
    /** Why the client stopped for good, once it has. */
    get stopped(): ClientClosedError | undefined {
      return stopped;
    },
    /** Connections that opened after the first. */
    get reconnects(): number {
      return counts.reconnects;
    },
    /** Sends put back in the outbox by lost connections. */
    get resent(): number {
      return requests.resent;
    },
    /** True while a socket is open and ready for actions. */
    get writable(): boolean {
      return isReady && socket?.readyState === OPEN;
    },
    /** Writes a frame when a socket is open and ready; false otherwise (nothing is written). */
    write(text: string): boolean {
      if (!isReady || socket?.readyState !== OPEN) return false;
      socket.send(text);
      const bytes = utf8Bytes(text);
      bytesWritten += bytes;
      frameEnds.push(bytesWritten);
      // what has been handed over since is seen now, so that the ends kept stay few
      handed();
      largestWritten = Math.max(largestWritten, bytes);
      return true;
    },
    handed,
    /** Bytes of the current socket's frames written so far. */
    written(): number {
      return bytesWritten;
    },
    leaveSilent,
    /** A request got its reply in time: the server answers, a socket left next starts over. */
    answered(): void {
      silences = 0;
    },
    /** Resolves when connected (now or on the next connection); rejects once stopped. */
    ready(): Promise<void> {
      if (stopped) return Promise.reject(stopped);
      if (isReady) return Promise.resolve();
      const waiter = Promise.withResolvers<void>();
      waiters.add(waiter);
      return waiter.promise;
    },
    /**
     * Stops for good and closes the socket (1000), taking no frame it still delivers; resolves
     * once it is gone, or after `closeTimeoutMs` when the server does not answer the close.
     */
    close,
  };
}
