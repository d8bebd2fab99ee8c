import { socketUrl } from "../client/mod.ts";

/** What a participant makes of each `chat_message` it receives. */
export interface ReceivedMessage {
  id: string;
  seq: number;
  sender_id: string;
  client_id: string | null;
}

/** Counts one socket keeps while the benchmark runs. */
export interface ParticipantStats {
  /** `chat_message` frames whose seq this socket had already seen. */
  duplicates: number;
  /** `chat_message` frames that came after a seq gap, or behind a later seq. */
  outOfOrder: number;
  /** `unread_messages` frames pushed to this socket after messages (not the one on connect). */
  unreadPushes: number;
  /** `error` frames that answer no request of this participant (e.g. a failed read mark). */
  errors: number;
}

/**
 * One side of a chat over a bare WebSocket, for generating load: the client library (client/)
 * validates every frame against the contract's schemas, which at thousands of messages a
 * second (each bringing a push of up to 50 unread messages) costs the load generator about a
 * core of the two this benchmark shares with the service. Here a frame is parsed only when
 * its content is needed: the unread push is recognised by its opening and counted.
 */
export class Participant {
  readonly stats: ParticipantStats = { duplicates: 0, outOfOrder: 0, unreadPushes: 0, errors: 0 };
  #socket: WebSocket;
  /** Every seq up to this one has come (from `latest_chat` on). */
  #allUpTo = 0;
  /** Seqs above `#allUpTo` that came: a gap stays open until its seq comes late, if ever. */
  #cameAbove = new Set<number>();
  #highestSeq = 0;
  /** The contract pushes the unread once as the socket opens: no message's push, not counted. */
  #connectPush = true;
  #pending = new Map<string, { resolve: () => void; reject: (error: Error) => void }>();
  #onMessage: (message: ReceivedMessage) => void = () => {};

  private constructor(socket: WebSocket) {
    this.#socket = socket;
  }

  /** Connects to `/v1/ws/chat/{chatId}/`; resolves once `latest_chat` is in. */
  static open(wsBase: string, chatId: string, token: string): Promise<Participant> {
    const socket = new WebSocket(socketUrl(wsBase, chatId, token));
    const participant = new Participant(socket);
    return new Promise((resolve, reject) => {
      socket.onclose = (event) =>
        reject(new Error(`closed before latest_chat: ${event.code} ${event.reason}`));
      socket.onmessage = (event) => {
        const frame = JSON.parse(event.data as string);
        if (frame.type !== "latest_chat") return;
        const newest = frame.messages.at(-1);
        participant.#allUpTo = participant.#highestSeq = newest?.seq ?? 0;
        socket.onmessage = (next) => participant.#receive(next.data as string);
        socket.onclose = () => participant.#failPending(new Error("socket closed"));
        resolve(participant);
      };
    });
  }

  /** Whether the socket is open: a request made otherwise is refused at once. */
  get open(): boolean {
    return this.#socket.readyState === WebSocket.OPEN;
  }

  onMessage(listener: (message: ReceivedMessage) => void): void {
    this.#onMessage = listener;
  }

  /** Sends a frame; with a `request_id`, resolves at its `ack` and rejects at its `error`. */
  request(frame: Record<string, unknown> & { request_id: string }): Promise<void> {
    return new Promise((resolve, reject) => {
      // a closed WebSocket drops what is sent without a word: the request would wait for ever
      if (!this.open) return reject(new Error("socket closed"));
      this.#pending.set(frame.request_id, { resolve, reject });
      this.#socket.send(JSON.stringify(frame));
    });
  }

  /** Sends a frame that expects no answer. */
  send(frame: Record<string, unknown>): void {
    this.#socket.send(JSON.stringify(frame));
  }

  close(): Promise<void> {
    if (this.#socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.#socket.onclose = () => {
        this.#failPending(new Error("socket closed"));
        resolve();
      };
      this.#socket.close();
    });
  }

  #receive(text: string) {
    if (text.startsWith('{"type":"unread_messages"')) return this.#unreadPush();
    const frame = JSON.parse(text);
    switch (frame.type) {
      case "chat_message": {
        const message = frame.message as ReceivedMessage;
        // by seq seen, not by the highest seq: a message behind a later one is out of order
        // (and delivered), not a duplicate
        if (message.seq <= this.#allUpTo || this.#cameAbove.has(message.seq)) {
          this.stats.duplicates++;
          return;
        }
        if (message.seq !== this.#highestSeq + 1) this.stats.outOfOrder++;
        this.#highestSeq = Math.max(this.#highestSeq, message.seq);
        this.#cameAbove.add(message.seq);
        while (this.#cameAbove.delete(this.#allUpTo + 1)) this.#allUpTo++;
        this.#onMessage(message);
        return;
      }
      case "unread_messages":
        return this.#unreadPush();
      case "ack":
        this.#pending.get(frame.request_id)?.resolve();
        this.#pending.delete(frame.request_id);
        return;
      case "error": {
        const pending = this.#pending.get(frame.request_id);
        if (!pending) {
          this.stats.errors++;
          return;
        }
        this.#pending.delete(frame.request_id);
        pending.reject(new Error(`${frame.code}: ${frame.message}`));
        return;
      }
    }
  }

  #unreadPush() {
    if (this.#connectPush) this.#connectPush = false;
    else this.stats.unreadPushes++;
  }

  #failPending(error: Error) {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}
