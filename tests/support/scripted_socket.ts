import {
  type ChatClient,
  type ChatClientOptions,
  createChatClient,
  type ServerFrame,
} from "../../client/mod.ts";
import { ClientEvents } from "./client_events.ts";
import { createWatch } from "./wait.ts";

// deno-lint-ignore no-explicit-any
type Frame = Record<string, any>;

/**
 * A WebSocket whose server is the test: it records what the client writes and hands the
 * client the frames and closes the test scripts, so that orderings a real server makes only
 * now and then (a late page, a push between a request and its answer) can be played exactly.
 */
export class ScriptedSocket {
  /** Open at once: the client writes nothing before the server's first frame anyway. */
  readyState = 1;
  /**
   * Bytes the client wrote that have not yet gone out: none, unless a test plays a slow uplink
   * (a large upload still leaving) by setting it; each frame written then waits behind them
   * (it is added), and the test says what the network took by lowering it.
   */
  bufferedAmount = 0;
  /** What the client wrote, parsed. */
  readonly sent: Frame[] = [];
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  readonly #changed: () => void;

  constructor(readonly url: string, changed: () => void) {
    this.#changed = changed;
  }

  /** The client writes a frame. */
  send(text: string): void {
    if (this.bufferedAmount > 0) this.bufferedAmount += new TextEncoder().encode(text).byteLength;
    this.sent.push(JSON.parse(text));
    this.#changed();
  }

  /**
   * The client closes: the socket is CLOSING (the server may still push frames) until the
   * close event, which follows, as a real socket's does.
   */
  close(code = 1000, reason = ""): void {
    if (this.readyState >= 2) return;
    this.readyState = 2;
    queueMicrotask(() => {
      this.readyState = 3;
      this.onclose?.({ code, reason });
    });
  }

  /** The server sends a frame. */
  push(frame: ServerFrame): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** The server answers a request the client wrote: `frames` (a page, say), then the ack. */
  answer(request: Frame, ...frames: ServerFrame[]): void {
    for (const frame of frames) this.push(frame);
    this.push({ type: "ack", request_id: request.request_id, action: request.action });
  }

  /** The server closes the socket with `code`. */
  serverClose(code: number, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** The token the client connected with. */
  get token(): string | null {
    return new URL(this.url).searchParams.get("token");
  }
}

/**
 * The `webSocket` option of a client under test, and the sockets it opened. `written()`
 * waits (with a deadline) for the client to write a frame, `socket()` for it to connect.
 */
export function scriptedServer() {
  const sockets: ScriptedSocket[] = [];
  const { changed, until } = createWatch();
  const taken = new Set<Frame>();
  return {
    sockets,
    webSocket(url: string): WebSocket {
      const socket = new ScriptedSocket(url, changed);
      sockets.push(socket);
      changed();
      return socket as unknown as WebSocket;
    },
    /** The socket the client opened `index`th (0: the first). */
    socket(index: number): Promise<ScriptedSocket> {
      return until(() => sockets[index], `socket #${index}`);
    },
    /** The first frame of `action` the client wrote on `socket` and no earlier call took. */
    written(socket: ScriptedSocket, action: string): Promise<Frame> {
      return until(() => {
        const frame = socket.sent.find((sent) => sent.action === action && !taken.has(sent));
        if (frame) taken.add(frame);
        return frame;
      }, `the client to write ${action}`);
    },
  };
}

/**
 * A client of the library under test whose server is scripted, with its events recorded and
 * a backoff of a few milliseconds. Close it with `await using`.
 */
export function openScriptedClient(options: Partial<ChatClientOptions> = {}): {
  client: ChatClient;
  events: ClientEvents;
  server: ReturnType<typeof scriptedServer>;
  /** Takes the client's next socket: sends `first` on it and waits until the client is ready. */
  accept(first: ServerFrame): Promise<ScriptedSocket>;
} & AsyncDisposable {
  const server = scriptedServer();
  const client = createChatClient({
    url: "http://chat.test",
    token: "token-1",
    webSocket: server.webSocket,
    backoff: { initialMs: 1, maxMs: 64, jitter: 0 },
    ...options,
  });
  const events = new ClientEvents(client);
  let accepted = 0;
  return {
    client,
    events,
    server,
    async accept(first) {
      const socket = await server.socket(accepted++);
      socket.push(first);
      await client.ready();
      return socket;
    },
    async [Symbol.asyncDispose]() {
      await client.close();
      events[Symbol.dispose]();
    },
  };
}
