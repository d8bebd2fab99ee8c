import { within } from "./wait.ts";

// deno-lint-ignore no-explicit-any
export type Frame = Record<string, any>;

export interface CloseInfo {
  code: number;
  reason: string;
}

/**
 * A test client over a real WebSocket: frames are buffered so a test can wait for the one it
 * expects (with a deadline) without racing the server.
 */
export class TestSocket implements AsyncDisposable {
  readonly frames: Frame[] = [];
  readonly closed: Promise<CloseInfo>;
  #socket: WebSocket;
  #taken = new Set<number>();
  #waiters = new Set<() => void>();
  #requests = 0;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    this.closed = new Promise((resolve) => {
      socket.onclose = (event) => {
        resolve({ code: event.code, reason: event.reason });
        this.#wake();
      };
    });
    socket.onmessage = (event) => {
      this.frames.push(typeof event.data === "string" ? JSON.parse(event.data) : { binary: true });
      this.#wake();
    };
  }

  /** Opens a socket; `token` goes in the query unless `header` is set. */
  static async open(
    url: string,
    options: { token?: string; header?: boolean; origin?: string } = {},
  ): Promise<TestSocket> {
    const target = new URL(url);
    const headers: Record<string, string> = {};
    if (options.token !== undefined) {
      if (options.header) headers.authorization = `Bearer ${options.token}`;
      else target.searchParams.set("token", options.token);
    }
    if (options.origin) headers.origin = options.origin;
    const socket = new WebSocket(target, { headers });
    const client = new TestSocket(socket);
    await within(
      new Promise<void>((resolve, reject) => {
        socket.onopen = () => resolve();
        socket.onerror = (event) =>
          reject(new Error(`socket error: ${(event as ErrorEvent).message}`));
      }),
      5_000,
      `open ${target.pathname}`,
    );
    return client;
  }

  #wake() {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Sends an object as JSON, or a string/bytes as they are. */
  send(frame: unknown): void {
    this.#socket.send(
      typeof frame === "string" || frame instanceof Uint8Array ? frame : JSON.stringify(frame),
    );
  }

  /** The first not-yet-taken frame matching `predicate`, waiting up to `ms` for it. */
  next(predicate: (frame: Frame) => boolean, what: string, ms = 5_000): Promise<Frame> {
    const find = () => {
      for (let index = 0; index < this.frames.length; index++) {
        if (!this.#taken.has(index) && predicate(this.frames[index]!)) {
          this.#taken.add(index);
          return this.frames[index]!;
        }
      }
      return undefined;
    };
    const found = find();
    if (found) return Promise.resolve(found);
    let waiter: () => void = () => {};
    const match = new Promise<Frame>((resolve, reject) => {
      waiter = () => {
        const frame = find();
        // off the list at once: frames that come before the promise settles are for others
        if (frame) {
          this.#waiters.delete(waiter);
          resolve(frame);
        } else if (this.#socket.readyState === WebSocket.CLOSED) {
          reject(new Error(`socket closed while waiting for ${what}`));
        }
      };
      this.#waiters.add(waiter);
    });
    return within(match, ms, what).finally(() => this.#waiters.delete(waiter));
  }

  /** The next frame of a type. */
  nextOfType(type: string, ms?: number): Promise<Frame> {
    return this.next((frame) => frame.type === type, `a ${type} frame`, ms);
  }

  /**
   * Sends an action with a fresh request_id; resolves with its `ack` or `error` frame, waiting
   * up to `ms` for it (past the store's 5 s timeout where a test needs that).
   */
  async request(frame: Frame, ms?: number): Promise<Frame> {
    const request_id = frame.request_id ?? `r${++this.#requests}`;
    this.send({ ...frame, request_id });
    return await this.next(
      (reply) =>
        (reply.type === "ack" || reply.type === "error") && reply.request_id === request_id,
      `the reply to ${frame.action} ${request_id}`,
      ms,
    );
  }

  /** Frames of a type received so far and not taken. */
  pending(type: string): Frame[] {
    return this.frames.filter((frame, index) => frame.type === type && !this.#taken.has(index));
  }

  close(): void {
    if (
      this.#socket.readyState === WebSocket.OPEN || this.#socket.readyState === WebSocket.CONNECTING
    ) {
      this.#socket.close(1000);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await within(this.closed, 5_000, "the socket to close");
  }
}
