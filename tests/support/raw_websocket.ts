import { within } from "./wait.ts";

/**
 * A WebSocket client over a bare TCP connection, for frames no WebSocket API lets a client
 * send: text frames that are not UTF-8, reserved opcodes, unmasked frames. It does the
 * handshake, writes raw frames and reads the server's frames until the close.
 */
export interface RawWebSocket extends AsyncDisposable {
  /** Writes one frame as given: FIN set, masked unless `masked` is false. */
  sendFrame(opcode: number, payload: Uint8Array, options?: { masked?: boolean }): Promise<void>;
  /** Resolves with the server's close code (1005 when its close frame carried none), or null
   * when the connection ended without a close frame. Text frames before it are in `texts`. */
  closed(ms?: number): Promise<number | null>;
  /** Like `closed`, but the connection stays open: the close frame is never answered. */
  closeFrame(ms?: number): Promise<number | null>;
  /** Text frames received so far. */
  readonly texts: string[];
  /** Resolves once a text frame matching `predicate` has arrived, waiting up to `ms`. */
  received(predicate: (text: string) => boolean, what: string, ms?: number): Promise<void>;
}

/** Opens `path` on `host:port` with a raw handshake; rejects unless the server answers 101. */
export async function openRawWebSocket(
  port: number,
  path: string,
): Promise<RawWebSocket> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const request = [
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
    "",
    "",
  ].join("\r\n");
  await writeAll(conn, new TextEncoder().encode(request));

  let buffered: Uint8Array = new Uint8Array(0);
  let ended = false;
  const read = async (): Promise<boolean> => {
    if (ended) return false;
    const chunk = new Uint8Array(64 * 1024);
    let count: number | null;
    try {
      count = await conn.read(chunk);
    } catch {
      count = null;
    }
    if (count === null) {
      ended = true;
      return false;
    }
    buffered = concat(buffered, chunk.subarray(0, count));
    return true;
  };

  // the handshake answer ends with an empty line
  let headerEnd = -1;
  while (headerEnd < 0) {
    if (!(await within(read(), 5_000, "the handshake answer"))) {
      conn.close();
      throw new Error("the server closed during the handshake");
    }
    headerEnd = indexOfBlankLine(buffered);
  }
  const head = new TextDecoder().decode(buffered.subarray(0, headerEnd));
  buffered = buffered.subarray(headerEnd + 4);
  if (!head.startsWith("HTTP/1.1 101")) {
    conn.close();
    throw new Error(`no upgrade: ${head.split("\r\n")[0]}`);
  }

  const texts: string[] = [];
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const waiter of [...waiters]) waiter();
  };
  /** Reads frames until a close frame (its code) or the end of the connection (null). */
  const reading = (async (): Promise<number | null> => {
    while (true) {
      const frame = parseFrame(buffered);
      if (frame) {
        buffered = buffered.subarray(frame.length);
        if (frame.opcode === 0x1) {
          texts.push(new TextDecoder().decode(frame.payload));
          wake();
        }
        if (frame.opcode === 0x8) {
          return frame.payload.length >= 2 ? (frame.payload[0]! << 8) | frame.payload[1]! : 1005;
        }
        continue;
      }
      if (!(await read())) return null;
    }
  })().finally(wake);
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    try {
      conn.close();
    } catch {
      // already closed
    }
  };

  return {
    texts,
    received(predicate, what, ms = 5_000) {
      let waiter = () => {};
      const found = new Promise<void>((resolve, reject) => {
        waiter = () => {
          if (texts.some(predicate)) resolve();
          else if (ended) reject(new Error(`the connection ended before ${what}`));
        };
        waiters.add(waiter);
        waiter();
      });
      return within(found, ms, what).finally(() => waiters.delete(waiter));
    },
    async sendFrame(opcode, payload, options = {}) {
      await writeAll(conn, encodeFrame(opcode, payload, options.masked ?? true));
    },
    closeFrame(ms = 5_000) {
      return within(reading, ms, "the server's close frame");
    },
    async closed(ms = 5_000) {
      try {
        return await within(reading, ms, "the server to close the connection");
      } finally {
        finish();
        await reading.catch(() => null);
      }
    },
    async [Symbol.asyncDispose]() {
      finish();
      await reading.catch(() => null);
    },
  };
}

function encodeFrame(opcode: number, payload: Uint8Array, masked: boolean): Uint8Array {
  const length = payload.length;
  const extended = length < 126 ? 0 : length < 65_536 ? 2 : 8;
  const header = new Uint8Array(2 + extended + (masked ? 4 : 0));
  header[0] = 0x80 | opcode;
  const maskBit = masked ? 0x80 : 0;
  if (extended === 0) header[1] = maskBit | length;
  else if (extended === 2) {
    header[1] = maskBit | 126;
    new DataView(header.buffer).setUint16(2, length);
  } else {
    header[1] = maskBit | 127;
    new DataView(header.buffer).setBigUint64(2, BigInt(length));
  }
  const body = payload.slice();
  if (masked) {
    const mask = crypto.getRandomValues(new Uint8Array(4));
    header.set(mask, 2 + extended);
    for (let index = 0; index < body.length; index++) body[index]! ^= mask[index % 4]!;
  }
  return concat(header, body);
}

function parseFrame(
  data: Uint8Array,
): { opcode: number; payload: Uint8Array; length: number } | null {
  if (data.length < 2) return null;
  const opcode = data[0]! & 0x0f;
  let length = data[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (data.length < 4) return null;
    length = (data[2]! << 8) | data[3]!;
    offset = 4;
  } else if (length === 127) {
    if (data.length < 10) return null;
    length = Number(new DataView(data.buffer, data.byteOffset + 2, 8).getBigUint64(0));
    offset = 10;
  }
  // frames from a server are never masked
  if (data.length < offset + length) return null;
  return { opcode, payload: data.subarray(offset, offset + length), length: offset + length };
}

function indexOfBlankLine(data: Uint8Array): number {
  for (let index = 0; index + 3 < data.length; index++) {
    if (data[index] === 13 && data[index + 1] === 10 && data[index + 2] === 13) {
      if (data[index + 3] === 10) return index;
    }
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array) {
  let written = 0;
  while (written < data.length) written += await conn.write(data.subarray(written));
}
