import {
  type ClientReadableStream,
  experimental,
  logVerbosity,
  status as Status,
} from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import http2 from "node:http2";
import { createMemoryBus } from "../bus/memory_bus.ts";
import { createSubjects } from "../bus/subjects.ts";
import { createChatPublisher } from "../chat/chat_publisher.ts";
import type { AdminStore } from "../chat/ports.ts";
import { ChatError } from "../chat/errors.ts";
import { configureLogging } from "../observability/log.ts";
import type { ChatService } from "../chat/service.ts";
import type { Chat } from "../chat/types.ts";
import {
  type AdminClient,
  createAdminClient,
  failure,
  type Reply,
} from "../tests/support/admin_client.ts";
import { storedMessage } from "../tests/support/stored_messages.ts";
import { createWatch, within } from "../tests/support/wait.ts";
import { startTcpProxy } from "../tests/support/tcp_proxy.ts";
import { createCertificateValid } from "../tests/support/tls_certificates.ts";
import { follow } from "../tests/support/watch_stream.ts";
import type { ReadinessSource } from "./health.ts";
import { MAX_REFLECTION_STREAMS } from "./reflection.ts";
import { type GrpcDeps, type GrpcOptions, type GrpcServer, startGrpcServer } from "./server.ts";

const TOKEN = "server-test-admin-token";
const HEALTH_WATCHER = new URL("../tests/support/health_watcher.ts", import.meta.url).pathname;
const SUBJECTS = createSubjects("server-test");

/** Readiness whose answer the test sets. */
function fakeReadiness(ready: boolean) {
  const listeners = new Set<(report: { ready: boolean }) => void>();
  const source: ReadinessSource = {
    check: () => Promise.resolve({ ready }),
    subscribe(listener) {
      listeners.add(listener);
      listener({ ready });
      return () => listeners.delete(listener);
    },
  };
  return {
    source,
    set(next: boolean) {
      ready = next;
      for (const listener of listeners) listener({ ready });
    },
  };
}

const unused = () => Promise.reject(new Error("not used by this test"));
const queries: AdminStore = {
  listChats: unused,
  listMessages: unused,
  searchMessages: unused,
  listBans: unused,
  listModerationActions: unused,
  stats: () => Promise.resolve({ chats: 3, messages: 9 }),
};

async function start(
  readiness: ReadinessSource,
  adminToken = TOKEN,
  options: Omit<Partial<GrpcOptions>, "adminToken"> & { deps?: Partial<GrpcDeps> } = {},
): Promise<GrpcServer> {
  const { deps, ...serverOptions } = options;
  return await startGrpcServer({
    // WatchEvents without a chat and GetStats never reach the domain service
    service: {} as ChatService,
    queries,
    bus: createMemoryBus(),
    subjects: SUBJECTS,
    onResync: () => () => {},
    readiness,
    activeConnections: () => 4,
    instanceId: "instance-1",
    onError: (error) => {
      throw error;
    },
    ...deps,
  }, { host: "127.0.0.1", port: 0, adminToken, shutdownTimeoutMs: 2_000, ...serverOptions });
}

function ended(stream: ClientReadableStream<Reply>) {
  stream.on("error", () => {});
  return within(
    new Promise<{ code: number }>((resolve) => stream.on("status", resolve)),
    5_000,
    "the end of the stream",
  );
}

/** The service's log lines from warnings up, written while the result is not disposed. */
async function captureWarnings() {
  const logged: string[] = [];
  const decoder = new TextDecoder();
  const logging = await configureLogging("warning", {
    write: (bytes) => logged.push(decoder.decode(bytes)),
  });
  const text = () => logged.join("");
  return {
    text,
    lines: (): Reply[] => text().split("\n").filter(Boolean).map((line) => JSON.parse(line)),
    [Symbol.asyncDispose]: () => logging[Symbol.asyncDispose](),
  };
}

Deno.test("startGrpcServer refuses to start without an admin token", async () => {
  await assert.rejects(start(fakeReadiness(true).source, ""), /GRPC_ADMIN_TOKEN/);
});

Deno.test("grpc-js's own errors are JSON log lines of the service, without the values it quotes", async () => {
  await using logs = await captureWarnings();
  const server = await start(fakeReadiness(true).source);
  try {
    // what grpc-js says of a header it cannot take (metadata.js), which quotes its value
    experimental.log(
      logVerbosity.ERROR,
      "Failed to add metadata entry authorization: Bearer secret-token. Invalid value",
    );
  } finally {
    await server.close();
  }
  const lines = logs.lines();
  assert.deepEqual(
    lines.map(({ level, logger, grpc_js }) => ({ level, logger, grpc_js })),
    [{ level: "WARN", logger: "chat.grpc", grpc_js: "Failed to add metadata entry authorization" }],
  );
  assert.ok(!logs.text().includes("secret-token"), logs.text());
});

Deno.test("what grpc-js says about headers a caller sent is bounded: a flood of such calls writes a few lines, not one per header", async () => {
  await using logs = await captureWarnings();
  const server = await start(fakeReadiness(true).source);
  try {
    // values gRPC metadata cannot hold (not printable ASCII): grpc-js reports each one it drops
    const headers = Object.fromEntries(
      Array.from({ length: 10 }, (_, index) => [`x-bad-${index}`, "caf\u00e9"]),
    );
    for (let n = 0; n < 20; n++) {
      // no token: the call is refused, after grpc-js read its headers
      const call = rawCall(server.port, "/chat.admin.v1.ChatAdmin/GetStats", { headers });
      call.stream.on("data", () => {});
      const ended = new Promise((resolve) => call.stream.on("close", resolve));
      call.stream.end();
      await within(ended, 5_000, "the call to end");
      await call.close();
    }
  } finally {
    await server.close();
  }
  const lines = logs.lines();
  assert.ok(lines.length > 0, "the first reports are logged");
  assert.ok(lines.length <= 20, `${lines.length} lines for 20 calls without a token`);
});

Deno.test("health follows readiness: SERVING, NOT_SERVING, and NOT_SERVING after close", async () => {
  const readiness = fakeReadiness(true);
  const server = await start(readiness.source);
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: null });
  try {
    assert.equal(await client.health(), "SERVING");
    readiness.set(false);
    assert.equal(await client.health("chat.admin.v1.ChatAdmin"), "NOT_SERVING");
    readiness.set(true);
    assert.equal(await client.health(), "SERVING");
  } finally {
    // the client goes first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    client.close();
    await server.close();
  }
});

Deno.test("GetStats answers from the store and this instance", async () => {
  const server = await start(fakeReadiness(true).source);
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
  try {
    assert.deepEqual(await client.call("GetStats"), {
      chats: 3,
      messages: 9,
      active_connections: 4,
      instance_id: "instance-1",
    });
  } finally {
    // the client goes first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    client.close();
    await server.close();
  }
});

Deno.test("a cancelled WatchEvents stream is let go of at once", async () => {
  const server = await start(fakeReadiness(true).source);
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
  try {
    const stream = client.watch({});
    const status = ended(stream);
    await within(new Promise((resolve) => stream.once("metadata", resolve)), 5_000, "headers");
    assert.equal(server.watchStreams, 1);
    stream.cancel();
    assert.equal((await status).code, Status.CANCELLED);
    // a call after the cancel on the same connection: the server has read the cancel by then
    await client.call("GetStats");
    assert.equal(server.watchStreams, 0);
  } finally {
    // the client goes first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    client.close();
    await server.close();
  }
});

Deno.test("close ends open WatchEvents streams with UNAVAILABLE", async () => {
  const server = await start(fakeReadiness(true).source);
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
  const stream = client.watch({});
  const status = ended(stream);
  await within(new Promise((resolve) => stream.once("metadata", resolve)), 5_000, "headers");
  await server.close();
  assert.equal((await status).code, Status.UNAVAILABLE);
  assert.equal(server.watchStreams, 0);
});

/** Opens two WatchEvents streams and waits until both are subscribed; the first can be cancelled. */
async function openTwoWatches(client: AdminClient) {
  const first = client.watch({});
  const firstWatch = follow(first);
  await firstWatch.subscribed;
  await follow(client.watch({})).subscribed;
  return {
    /** Cancels the first stream and waits for its end. */
    async cancel() {
      first.cancel();
      assert.equal((await firstWatch.ended).code, Status.CANCELLED);
    },
  };
}

Deno.test("a WatchEvents stream past the open ones allowed ends with RESOURCE_EXHAUSTED, and a cancelled one makes room", async () => {
  const server = await start(fakeReadiness(true).source, TOKEN, { maxWatchStreams: 2 });
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
  try {
    const first = await openTwoWatches(client);
    const refused = await within(follow(client.watch({})).ended, 5_000, "the refusal");
    assert.equal(refused.code, Status.RESOURCE_EXHAUSTED);
    assert.match(
      refused.details,
      /^too many WatchEvents streams open on this instance \(at most 2\)/,
    );
    assert.equal(server.watchStreams, 2);
    await first.cancel();
    // a call after the cancel on the same connection: the server has read the cancel by then
    await client.call("GetStats");
    await follow(client.watch({})).subscribed;
    assert.equal(server.watchStreams, 2);
  } finally {
    // the client goes first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    client.close();
    await server.close();
  }
});

Deno.test("streams past the bound of one connection wait for a place on it: the server holds at most that many of its calls at once", async () => {
  const server = await start(fakeReadiness(true).source, TOKEN, {
    maxWatchStreams: 10,
    maxStreamsPerConnection: 2,
  });
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
  try {
    const first = await openTwoWatches(client);
    const third = follow(client.watch({}));
    const early = await Promise.race([
      third.subscribed.then(() => "subscribed"),
      new Promise((resolve) => setTimeout(() => resolve("waiting"), 500)),
    ]);
    assert.equal(early, "waiting");
    assert.equal(server.watchStreams, 2);
    await first.cancel();
    await third.subscribed;
    assert.equal(server.watchStreams, 2);
  } finally {
    // the client goes first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    client.close();
    await server.close();
  }
});

Deno.test("a WatchEvents call holds its place from its start: calls still looking up their chat fill the places, and each gives its place back however it ends", async () => {
  /** Chat lookups under way, answered by the test. */
  const lookups: Array<PromiseWithResolvers<Chat>> = [];
  const looked = createWatch();
  const service = {
    getChat: () => {
      const lookup = Promise.withResolvers<Chat>();
      lookups.push(lookup);
      looked.changed();
      return lookup.promise;
    },
  } as Partial<ChatService> as ChatService;
  const server = await start(fakeReadiness(true).source, TOKEN, {
    maxWatchStreams: 2,
    deps: { service },
  });
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
  const chat = { id: crypto.randomUUID(), user_id: "cust-1", vendor_id: "vend-1" } as Chat;
  const lookingUp = async (count: number) => {
    await looked.until(() => lookups.length >= count || undefined, `${count} chat lookups`);
    return lookups[count - 1]!;
  };
  try {
    const cancelled = client.watch({ chat_id: chat.id });
    const cancelledEnd = follow(cancelled).ended;
    const unknown = follow(client.watch({ chat_id: crypto.randomUUID() }));
    const [cancelledLookup, unknownLookup] = [await lookingUp(1), await lookingUp(2)];
    // both places are taken by calls that have not started streaming yet
    const burst = await within(follow(client.watch({})).ended, 5_000, "the refusal");
    assert.equal(burst.code, Status.RESOURCE_EXHAUSTED);

    cancelled.cancel();
    assert.equal((await cancelledEnd).code, Status.CANCELLED);
    // a call after the cancel on the same connection: the server has heard the cancel by then
    await client.call("GetStats");
    const timedOut = follow(client.watch({ chat_id: chat.id }, { deadlineMs: 300 }));
    assert.equal(
      (await within(timedOut.ended, 5_000, "the deadline")).code,
      Status.DEADLINE_EXCEEDED,
    );
    await client.call("GetStats");
    cancelledLookup.resolve(chat);
    unknownLookup.reject(new ChatError("not_found", "no such chat"));
    assert.equal((await within(unknown.ended, 5_000, "NOT_FOUND")).code, Status.NOT_FOUND);
    await client.call("GetStats");
    assert.equal(server.watchStreams, 0);

    const found = follow(client.watch({ chat_id: chat.id }));
    (await lookingUp(4)).resolve(chat);
    await found.subscribed;
    await follow(client.watch({})).subscribed;
    assert.equal(server.watchStreams, 2);
  } finally {
    // the client goes first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    client.close();
    await server.close();
  }
});

Deno.test("a WatchEvents stream ended by its deadline, by falling behind or by a resync gives its place back", async () => {
  const bus = createMemoryBus();
  const resyncs = new Set<() => void>();
  const server = await start(fakeReadiness(true).source, TOKEN, {
    maxWatchStreams: 1,
    watchBuffer: 2,
    deps: {
      bus,
      onResync: (listener) => {
        resyncs.add(listener);
        return () => resyncs.delete(listener);
      },
    },
  });
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
  /** Watches in the one place, which must be free; resolves with how that stream ends. */
  const watchInFreePlace = async (options: { deadlineMs?: number } = {}) => {
    // a call on the same connection: the server has heard how the last stream ended by then
    await client.call("GetStats");
    const watch = follow(client.watch({}, options));
    await watch.subscribed;
    return () => within(watch.ended, 5_000, "the end of the stream");
  };
  try {
    const timedOut = await watchInFreePlace({ deadlineMs: 300 });
    assert.equal((await timedOut()).code, Status.DEADLINE_EXCEEDED);

    const fellBehind = await watchInFreePlace();
    const publisher = createChatPublisher({ bus, subjects: SUBJECTS });
    // published at once, faster than any stream is written: past grpc-js's buffer and the 2
    for (let seq = 1; seq <= 100; seq++) {
      publisher.publish("c1", {
        chat: { user_id: "cust-1", vendor_id: "vend-1" },
        audience: { to: "all" },
        frame: { type: "chat_message", chat_id: "c1", message: storedMessage("c1", seq) },
        sent_at: 1_000 + seq,
      });
    }
    assert.equal((await fellBehind()).code, Status.RESOURCE_EXHAUSTED);

    const resynced = await watchInFreePlace();
    for (const resync of resyncs) resync();
    assert.equal((await resynced()).code, Status.UNAVAILABLE);

    await watchInFreePlace();
    assert.equal(server.watchStreams, 1);
  } finally {
    // the client goes first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    client.close();
    await server.close();
  }
});

Deno.test("a WatchEvents stream whose client has vanished without a word (no events to write) gives its place back once a keepalive ping goes unanswered", async () => {
  const memoryBus = createMemoryBus();
  const letGo = Promise.withResolvers<void>();
  // the stream's bus subscription is let go of as the server lets go of the stream
  const bus = {
    ...memoryBus,
    subscribe: (...args: Parameters<typeof memoryBus.subscribe>) => {
      const unsubscribe = memoryBus.subscribe(...args);
      return () => {
        unsubscribe();
        letGo.resolve();
      };
    },
  };
  const server = await start(fakeReadiness(true).source, TOKEN, {
    maxWatchStreams: 1,
    keepalive: { intervalMs: 500, timeoutMs: 1_000 },
    deps: { bus },
  });
  await using proxy = startTcpProxy({ hostname: "127.0.0.1", port: server.port });
  using vanished = await createAdminClient(`127.0.0.1:${proxy.port}`, { token: TOKEN });
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
  try {
    const quiet = follow(vanished.watch({}));
    await quiet.subscribed;
    assert.equal(server.watchStreams, 1);
    // its machine is gone: no FIN, no RST, nothing more either way
    proxy.stall("both");
    await within(letGo.promise, 5_000, "the vanished client's stream to be let go of");
    assert.equal(server.watchStreams, 0);
    await follow(client.watch({})).subscribed;
    assert.equal(server.watchStreams, 1);
  } finally {
    // the clients go first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    client.close();
    vanished.close();
    await proxy.cut();
    await server.close();
  }
});

Deno.test("a connection with no call open for the idle time is closed by the server, and one holding a WatchEvents stream is kept", async () => {
  const server = await start(fakeReadiness(true).source, TOKEN, { idleConnectionMs: 300 });
  const idle = http2.connect(`http://127.0.0.1:${server.port}`);
  idle.on("error", () => {});
  const closed = new Promise<void>((resolve) => idle.once("close", () => resolve()));
  const goaways: string[] = [];
  idle.once("goaway", () => goaways.push("idle"));
  const watching = rawCall(server.port, "/chat.admin.v1.ChatAdmin/WatchEvents", {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  watching.stream.session?.once("goaway", () => goaways.push("watching"));
  watching.stream.on("data", () => {});
  try {
    const subscribed = new Promise((resolve) => watching.stream.once("response", resolve));
    // an empty WatchEvents request: every chat
    watching.stream.end(Buffer.alloc(5));
    await within(subscribed, 3_000, "the WatchEvents headers");
    await within(closed, 3_000, "the idle connection to be closed");
    // three idle times on: the watching connection is not idle while its stream is open
    await new Promise((resolve) => setTimeout(resolve, 900));
    // told to go (GOAWAY, then closed), as the watching connection is not
    assert.deepEqual(goaways, ["idle"]);
    assert.equal(server.watchStreams, 1);
  } finally {
    // the clients go first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    await watching.close();
    idle.destroy();
    await server.close();
  }
});

Deno.test("a client pinging faster than allowed with nothing sent to it between its pings is cut with ENHANCE_YOUR_CALM; one pinging after each answer is not", async () => {
  const server = await start(fakeReadiness(true).source, TOKEN, {
    pingPolicy: { minIntervalMs: 1_000, maxStrikes: 2 },
  });
  const address = `http://127.0.0.1:${server.port}`;
  const pinger = http2.connect(address);
  const caller = http2.connect(address);
  const goaways: Array<[string, number, string]> = [];
  for (const [name, session] of [["pinger", pinger], ["caller", caller]] as const) {
    session.on("error", () => {});
    session.once("goaway", (code, _lastStream, data) => goaways.push([name, code, String(data)]));
  }
  const ping = (session: http2.ClientHttp2Session) =>
    within(
      new Promise((resolve) => session.ping((error) => resolve(error?.message))),
      2_000,
      "a ping's answer",
    );
  try {
    await within(
      Promise.all(
        [pinger, caller].map((session) =>
          new Promise((resolve) => session.once("connect", resolve))
        ),
      ),
      2_000,
      "the connections",
    );
    const cut = new Promise((resolve) => pinger.once("close", resolve));
    // four pings in a row: the first is free, the next three are strikes
    for (let count = 0; count < 4 && !pinger.destroyed; count++) await ping(pinger);
    await within(cut, 2_000, "the pinger to be cut");
    // a call answered between two pings: the second one is free, however soon it comes
    for (let round = 0; round < 6; round++) {
      assert.equal(await healthCheck(caller), Status.OK);
      await ping(caller);
    }
    // what grpc-js and grpc-go clients read as "ping less often"
    assert.deepEqual(goaways, [
      ["pinger", http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, "too_many_pings"],
    ]);
    assert.equal(caller.closed, false);
  } finally {
    // the clients go first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    pinger.destroy();
    caller.destroy();
    await server.close();
  }
});

Deno.test("a connection past the bound closes the one idle longest, or itself when every other has a call open", async () => {
  const server = await start(fakeReadiness(true).source, TOKEN, { maxConnections: 2 });
  const address = `http://127.0.0.1:${server.port}`;
  const sessions: http2.ClientHttp2Session[] = [];
  const watches: Array<ReturnType<typeof rawCall>> = [];
  const connect = () => {
    const session = http2.connect(address);
    session.on("error", () => {});
    sessions.push(session);
    return session;
  };
  const closed = (session: http2.ClientHttp2Session, what: string) =>
    within(new Promise((resolve) => session.once("close", resolve)), 2_000, what);
  /** A connection of its own holding a WatchEvents stream open. */
  const watch = async () => {
    const call = rawCall(server.port, "/chat.admin.v1.ChatAdmin/WatchEvents", {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    watches.push(call);
    call.stream.on("data", () => {});
    const subscribed = new Promise((resolve) => call.stream.once("response", resolve));
    call.stream.end(Buffer.alloc(5));
    await within(subscribed, 2_000, "the WatchEvents headers");
    return call.stream.session as http2.ClientHttp2Session;
  };
  try {
    await watch();
    const idle = connect();
    assert.equal(await healthCheck(idle), Status.OK);
    const next = connect();
    const idleClosed = closed(idle, "the connection idle longest to be closed");
    assert.equal(await healthCheck(next), Status.OK);
    await idleClosed;
    // a second watching connection: `next` is the one idle now
    const nextClosed = closed(next, "the idle connection to give way to a watch");
    await watch();
    await nextClosed;
    // both connections have a call open: the one that comes is closed
    await closed(connect(), "a connection past the bound to be closed");
    assert.equal(server.watchStreams, 2);
  } finally {
    // the clients go first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    for (const session of sessions) session.destroy();
    for (const call of watches) await call.close();
    await server.close();
  }
});

Deno.test("at the bound, callers without the token holding a call open on every connection cannot lock out the token's holders: one of theirs gives way", async () => {
  const server = await start(fakeReadiness(true).source, TOKEN, { maxConnections: 2 });
  const watchers: Array<{ process: Deno.ChildProcess; said: (word: string) => Promise<void> }> = [];
  /** A process of its own holding a health Watch open on a connection of its own. */
  const healthWatch = async () => {
    const process = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", HEALTH_WATCHER, String(server.port)],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const said = async (word: string) => {
      while (!text.split("\n").includes(word)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the health watcher ended without saying ${word}`);
        text += value;
      }
    };
    watchers.push({ process, said });
    await within(said("watching"), 10_000, "the health Watch headers");
  };
  try {
    await healthWatch();
    await healthWatch();
    {
      using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
      assert.equal((await client.call("GetStats")).instance_id, "instance-1");
    }
    // the first of them, open the longest, gave way
    await within(watchers[0]!.said("closed"), 2_000, "the first of them to be closed");
  } finally {
    for (const { process } of watchers) {
      try {
        process.kill();
      } catch {
        // gone already
      }
      await process.status;
    }
    await server.close();
  }
});

Deno.test("at the bound, a connection that closes without a call (the listener's probe, every 2 s) makes no idle connection give way", async () => {
  const server = await start(fakeReadiness(true).source, TOKEN, { maxConnections: 1 });
  const idle = http2.connect(`http://127.0.0.1:${server.port}`);
  idle.on("error", () => {});
  try {
    assert.equal(await healthCheck(idle), Status.OK);
    // as listener.ts probes: connect, read the server's SETTINGS, close
    for (let probe = 0; probe < 3; probe++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await conn.read(new Uint8Array(64));
      conn.close();
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(idle.destroyed || idle.closed, false, "the idle connection was closed by a probe");
    assert.equal(await healthCheck(idle), Status.OK);
  } finally {
    // the client goes first (denoland/deno#36788)
    idle.destroy();
    await server.close();
  }
});

Deno.test("a WatchEvents stream ends with UNAVAILABLE when an event on its subject cannot be read, rather than go on with a gap", async () => {
  const bus = createMemoryBus();
  const reported: string[] = [];
  const server = await start(fakeReadiness(true).source, TOKEN, {
    deps: { bus, onError: (_error, context) => reported.push(context) },
  });
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
  try {
    const watch = follow(client.watch({}));
    await watch.subscribed;
    const chatId = crypto.randomUUID();
    const encode = (json: unknown) => new TextEncoder().encode(JSON.stringify(json));
    // not an admin event: skipped unread, the stream goes on
    bus.publish(SUBJECTS.chat(chatId), encode({ frame: { type: "typing", chat_id: chatId } }));
    // an admin event this instance cannot read (an instance of another version, say)
    bus.publish(
      SUBJECTS.chat(chatId),
      encode({ frame: { type: "chat_message", chat_id: chatId } }),
    );
    const end = await within(watch.ended, 5_000, "the stream's end");
    assert.equal(end.code, Status.UNAVAILABLE);
    assert.match(end.details, /^an event could not be read and may be missing: watch again/);
    assert.deepEqual(reported, ["watch event"]);
    assert.equal(server.watchStreams, 0);
  } finally {
    // the client goes first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    client.close();
    await server.close();
  }
});

Deno.test("close tells open health Watch streams NOT_SERVING and ends them at once with UNAVAILABLE", async () => {
  const server = await start(fakeReadiness(true).source);
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: null });
  const stream = client.watchHealth();
  const seen: string[] = [];
  const status = ended(stream);
  const serving = new Promise((resolve) => stream.once("data", resolve));
  stream.on("data", (reply: Reply) => seen.push(reply.status));
  await within(serving, 5_000, "the first health status");
  const startedAt = performance.now();
  await server.close();
  const elapsedMs = performance.now() - startedAt;
  assert.equal((await status).code, Status.UNAVAILABLE);
  assert.deepEqual(seen, ["SERVING", "NOT_SERVING"]);
  // shutdownTimeoutMs is 2 s: an open Watch must not hold close until it is forced
  assert.ok(elapsedMs < 1_000, `close took ${Math.round(elapsedMs)} ms`);
});

Deno.test("a health Watch past the open ones allowed ends with RESOURCE_EXHAUSTED, and one that leaves makes room", async () => {
  const server = await start(fakeReadiness(true).source, TOKEN, { maxHealthWatches: 2 });
  try {
    using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: null });
    const serving = (stream: ClientReadableStream<Reply>) =>
      within(
        new Promise((resolve) => stream.once("data", resolve)),
        5_000,
        "the first health status",
      );
    const first = client.watchHealth();
    const firstEnded = ended(first);
    const second = client.watchHealth();
    ended(second);
    await serving(first);
    await serving(second);
    assert.equal((await ended(client.watchHealth())).code, Status.RESOURCE_EXHAUSTED);
    assert.equal(await client.health(), "SERVING", "Check is never limited");
    first.cancel();
    assert.equal((await firstEnded).code, Status.CANCELLED);
    // the server hears the cancel after the client does: until then the place is still taken
    const deadline = performance.now() + 5_000;
    for (;;) {
      const third = client.watchHealth();
      const outcome = await within(
        Promise.race([
          new Promise((resolve) => third.once("data", () => resolve("serving"))),
          ended(third).then((status) => status.code),
        ]),
        5_000,
        "a health Watch's first answer",
      );
      if (outcome === "serving") break;
      assert.equal(outcome, Status.RESOURCE_EXHAUSTED);
      assert.ok(performance.now() < deadline, "the cancelled Watch's place was never freed");
    }
  } finally {
    await server.close();
  }
});

Deno.test("close ends an open reflection stream at once with UNAVAILABLE, so a tool left attached does not hold the shutdown", async () => {
  const server = await start(fakeReadiness(true).source);
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: null });
  const stream = client.openReflection();
  const status = ended(stream);
  const answered = new Promise((resolve) => stream.once("data", resolve));
  stream.write({ list_services: "" });
  await within(answered, 5_000, "the reflection answer");
  const startedAt = performance.now();
  await server.close();
  const elapsedMs = performance.now() - startedAt;
  // shutdownTimeoutMs is 2 s: an idle reflection stream must not hold close until it is forced
  assert.ok(elapsedMs < 1_000, `close took ${Math.round(elapsedMs)} ms`);
  assert.equal((await status).code, Status.UNAVAILABLE);
});

Deno.test("close with a deadline that has already passed cuts the calls in flight at once", async () => {
  const reached = Promise.withResolvers<void>();
  // a call that never finishes holds a graceful shutdown
  const stalled: AdminStore = {
    ...queries,
    stats: () => {
      reached.resolve();
      return new Promise(() => {});
    },
  };
  const server = await start(fakeReadiness(true).source, TOKEN, { deps: { queries: stalled } });
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
  const call = failure(client.call("GetStats"));
  await within(reached.promise, 5_000, "the call to reach the store");
  const startedAt = performance.now();
  await server.close(AbortSignal.abort());
  const elapsedMs = performance.now() - startedAt;
  // shutdownTimeoutMs is 2 s: a deadline already over leaves nothing to wait for
  assert.ok(elapsedMs < 1_000, `close took ${Math.round(elapsedMs)} ms`);
  assert.notEqual((await call).code, Status.OK);
});

/**
 * A call of `path` written by hand over HTTP/2 (node:http2), as a client gRPC libraries would
 * not let a test be: framing, flow control, headers and all. `close` cancels it and ends the
 * session.
 */
function rawCall(
  port: number,
  path: string,
  options: { settings?: http2.Settings; headers?: Record<string, string> } = {},
) {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: options.settings ?? {} });
  session.on("error", () => {});
  const stream = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...options.headers,
  });
  stream.on("error", () => {});
  return {
    stream,
    async close() {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await new Promise((resolve) => session.close(() => resolve(undefined)));
    },
  };
}

/** A gRPC frame of a ServerReflectionRequest asking for the file of `symbol`. */
function reflectionRequest(symbol: string): Buffer {
  const name = Buffer.from(symbol);
  // field 4 (file_containing_symbol), length-delimited; names here are under 128 bytes
  const message = Buffer.concat([Buffer.from([0x22, name.length]), name]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

Deno.test("a reflection client that asks without reading the answers is read no further, so the server does not queue answers without end", async () => {
  const server = await start(fakeReadiness(true).source);
  await using proxy = startTcpProxy({ hostname: "127.0.0.1", port: server.port });
  // an HTTP/2 client that grants the server no room for answers, as one that never reads
  const call = rawCall(proxy.port, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", {
    settings: { initialWindowSize: 0 },
  });
  const { stream } = call;
  try {
    // 1.5 MB of requests, each answered by kilobytes of descriptors
    const request = reflectionRequest("chat.admin.v1.ChatAdmin");
    const count = 50_000;
    for (let n = 1; n < count; n++) stream.write(request);
    const allTaken = new Promise<void>((resolve) => stream.write(request, () => resolve()));
    const taken = await within(allTaken, 3_000, "every request to be taken").then(
      () => true,
      () => false,
    );
    assert.equal(taken, false, "the server took every request while no answer was read");
    assert.ok(
      proxy.upstreamBytes < (request.length * count) / 4,
      `${proxy.upstreamBytes} bytes of requests taken`,
    );
  } finally {
    await call.close();
    await proxy.cut();
    await server.close();
  }
});

Deno.test("a WatchEvents stream that falls behind a client reading nothing keeps its place until the stream is over, so stalled streams stay within the bound", async () => {
  const bus = createMemoryBus();
  const server = await start(fakeReadiness(true).source, TOKEN, {
    maxWatchStreams: 1,
    watchBuffer: 2,
    deps: { bus },
  });
  // an HTTP/2 client that grants the server no room for events, as one that never reads
  const stalled = rawCall(server.port, "/chat.admin.v1.ChatAdmin/WatchEvents", {
    settings: { initialWindowSize: 0 },
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
  try {
    const subscribed = new Promise((resolve) => stalled.stream.once("response", resolve));
    // an empty WatchEventsRequest
    stalled.stream.end(Buffer.alloc(5));
    await within(subscribed, 5_000, "the stalled stream's headers");
    const publisher = createChatPublisher({ bus, subjects: SUBJECTS });
    for (let seq = 1; seq <= 100; seq++) {
      publisher.publish("c1", {
        chat: { user_id: "cust-1", vendor_id: "vend-1" },
        audience: { to: "all" },
        frame: { type: "chat_message", chat_id: "c1", message: storedMessage("c1", seq) },
        sent_at: 1_000 + seq,
      });
    }
    // its end waits behind the events it holds and has not read: the stream is not over
    assert.equal(server.watchStreams, 1);
    const refused = await within(follow(client.watch({})).ended, 5_000, "the refusal");
    assert.equal(refused.code, Status.RESOURCE_EXHAUSTED);
    // once the client goes, so does the stream, and its place is free
    stalled.stream.close(http2.constants.NGHTTP2_CANCEL);
    const deadline = performance.now() + 5_000;
    while (server.watchStreams > 0) {
      assert.ok(performance.now() < deadline, "the stalled stream's place was never freed");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await follow(client.watch({})).subscribed;
  } finally {
    await stalled.close();
    // the client goes first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    client.close();
    await server.close();
  }
});

Deno.test("a reflection stream past the open ones allowed ends with RESOURCE_EXHAUSTED, and one that ends makes room", async () => {
  const server = await start(fakeReadiness(true).source);
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: null });
  const streams: Array<ReturnType<typeof client.openReflection>> = [];
  /** Opens a stream and resolves with its first answer, or the status that ended it. */
  const open = () => {
    const stream = client.openReflection();
    streams.push(stream);
    stream.on("error", () => {});
    const outcome = within(
      new Promise<string | number>((resolve) => {
        stream.once("data", () => resolve("answered"));
        stream.once("status", (status) => resolve(status.code));
      }),
      5_000,
      "a reflection stream's first answer",
    );
    stream.write({ list_services: "" });
    return outcome;
  };
  try {
    const outcomes = await Promise.all(Array.from({ length: MAX_REFLECTION_STREAMS }, open));
    assert.ok(outcomes.every((outcome) => outcome === "answered"));
    assert.equal(await open(), Status.RESOURCE_EXHAUSTED);
    // grpcurl's way: a stream whose client is done asking ends, and gives its place back
    streams[0]!.end();
    const deadline = performance.now() + 5_000;
    let outcome = await open();
    while (outcome !== "answered") {
      assert.equal(outcome, Status.RESOURCE_EXHAUSTED);
      assert.ok(performance.now() < deadline, "the ended stream's place was never freed");
      outcome = await open();
    }
  } finally {
    for (const stream of streams) stream.cancel();
    client.close();
    await server.close();
  }
});

Deno.test("a request message longer than any the contract has is refused with RESOURCE_EXHAUSTED as its length is read, before its bytes are held", async () => {
  const server = await start(fakeReadiness(true).source);
  // health takes no token, so its messages are read from anyone
  const call = rawCall(server.port, "/grpc.health.v1.Health/Check");
  const { stream } = call;
  stream.on("data", () => {});
  try {
    const status = new Promise<string>((resolve) => {
      const take = (headers: http2.IncomingHttpHeaders) => {
        if (headers["grpc-status"] !== undefined) resolve(String(headers["grpc-status"]));
      };
      stream.on("response", take);
      stream.on("trailers", take);
    });
    // a message said to be 4 MiB long (grpc-js's default limit), of which 64 KiB come
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(4 * 1024 * 1024 - 16, 1);
    stream.write(prefix);
    stream.write(Buffer.alloc(64 * 1024, 0x41));
    const code = await within(status, 3_000, "the status of the call");
    assert.equal(Number(code), Status.RESOURCE_EXHAUSTED);
  } finally {
    await call.close();
    await server.close();
  }
});

Deno.test("a call whose deadline is further off than a timer reaches (24.8 days) runs, and a WatchEvents stream with one stays open", async () => {
  // an answer that takes a moment: a deadline read as past would end the call first
  const slowStats = async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    return { chats: 3, messages: 9 };
  };
  const server = await start(fakeReadiness(true).source, TOKEN, {
    deps: { queries: { ...queries, stats: slowStats } },
  });
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
  try {
    // 30 days: sent as `2592000S`, over 2^31 ms
    const stats = await client.call("GetStats", {}, { deadlineMs: 30 * 24 * 3600 * 1000 });
    assert.equal(stats.instance_id, "instance-1");
    // 2^32 ms and a little (49.7 days): sent as `4294968S`, 704 ms past 2^32 ms
    const stream = client.watch({}, { deadlineMs: 2 ** 32 + 100 });
    const status = ended(stream);
    await within(new Promise((resolve) => stream.once("metadata", resolve)), 5_000, "headers");
    const early = await Promise.race([
      status,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 1_500)),
    ]);
    assert.equal(early, undefined, `the stream ended early: ${JSON.stringify(early)}`);
    stream.cancel();
    assert.equal((await status).code, Status.CANCELLED);
  } finally {
    // the client goes first: a GOAWAY on a live client session can crash Deno's nghttp2
    // (denoland/deno#36788)
    client.close();
    await server.close();
  }
});

/** The grpc-status a raw call ends with, as a number. */
function statusOf(stream: http2.ClientHttp2Stream): Promise<number> {
  return new Promise((resolve) => {
    const take = (headers: http2.IncomingHttpHeaders) => {
      if (headers["grpc-status"] !== undefined) resolve(Number(headers["grpc-status"]));
    };
    stream.on("response", take);
    stream.on("trailers", take);
  });
}

/** A health Check sent whole on `session`, which is idle again once it is answered; its status. */
function healthCheck(session: http2.ClientHttp2Session): Promise<number> {
  const stream = session.request({
    ":method": "POST",
    ":path": "/grpc.health.v1.Health/Check",
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("data", () => {});
  stream.on("error", () => {});
  const status = statusOf(stream);
  stream.end(Buffer.alloc(5));
  return within(status, 2_000, "the health check's status");
}

/** The first bytes of a gRPC message said to be `length` bytes long: the rest never comes. */
function partialMessage(length: number): Buffer {
  const bytes = Buffer.alloc(5 + 10, 0x41);
  bytes[0] = 0;
  bytes.writeUInt32BE(length, 1);
  return bytes;
}

Deno.test("a ChatAdmin call without a token is refused as its headers come, without waiting for its request message", async () => {
  const server = await start(fakeReadiness(true).source);
  const call = rawCall(server.port, "/chat.admin.v1.ChatAdmin/GetStats");
  call.stream.on("data", () => {});
  try {
    const status = statusOf(call.stream);
    // a message of 60,000 bytes, of which 10 come: until it is whole, grpc-js holds what came
    call.stream.write(partialMessage(60_000));
    assert.equal(await within(status, 3_000, "the status of the call"), Status.UNAUTHENTICATED);
  } finally {
    await call.close();
    await server.close();
  }
});

Deno.test("calls waiting for their request message are bounded: each call past the bound cuts the one waiting longest, and health still answers", async () => {
  const server = await start(fakeReadiness(true).source, TOKEN, { maxWaitingCalls: 3 });
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: TOKEN });
  const calls: Array<ReturnType<typeof rawCall>> = [];
  const statuses: Array<number | undefined> = [];
  const settled = (count: number) =>
    within(
      (async () => {
        while (statuses.slice(0, count).some((code) => code === undefined)) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })(),
      3_000,
      `the first ${count} calls to be cut`,
    );
  try {
    // one after the other: the first waits longest
    for (let index = 0; index < 5; index++) {
      const call = rawCall(server.port, "/grpc.health.v1.Health/Check");
      calls.push(call);
      statuses.push(undefined);
      call.stream.on("data", () => {});
      statusOf(call.stream).then((code) => statuses[index] = code);
      call.stream.write(partialMessage(60_000));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await settled(2);
    assert.deepEqual(statuses, [
      Status.RESOURCE_EXHAUSTED,
      Status.RESOURCE_EXHAUSTED,
      undefined,
      undefined,
      undefined,
    ]);
    // a request sent whole is never the one waiting longest: it is answered
    assert.equal(await client.health(), "SERVING");
    // one more that keeps waiting cuts the one waiting longest then
    const late = rawCall(server.port, "/grpc.health.v1.Health/Check");
    calls.push(late);
    statuses.push(undefined);
    late.stream.on("data", () => {});
    statusOf(late.stream).then((code) => statuses[5] = code);
    late.stream.write(partialMessage(60_000));
    await settled(3);
    assert.deepEqual(statuses.slice(2), [
      Status.RESOURCE_EXHAUSTED,
      undefined,
      undefined,
      undefined,
    ]);
  } finally {
    client.close();
    for (const call of calls) await call.close();
    await server.close();
  }
});

Deno.test("a TLS certificate that has expired, or is not valid yet, is logged as a warning at the start, and one that expires while the plane runs when it does", async () => {
  const hour = 3_600_000;
  const now = Date.now();
  const expired = await createCertificateValid(new Date(now - 48 * hour), new Date(now - hour));
  const early = await createCertificateValid(new Date(now + hour), new Date(now + 48 * hour));
  const expiring = await createCertificateValid(new Date(now - hour), new Date(now + 2_000));
  await using logs = await captureWarnings();
  const certificateLines = () =>
    logs.lines().filter((line) => /certificate/.test(line.message ?? line.msg ?? ""));
  for (const tls of [expired, early, expiring]) {
    const server = await start(fakeReadiness(true).source, TOKEN, { tls });
    if (tls !== expiring) await server.close();
    else {
      // not expired yet: nothing said
      assert.equal(certificateLines().length, 2, JSON.stringify(logs.lines()));
      // it ends within 2 s of `now`, and is past its last second a second after
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      await server.close();
    }
  }
  const lines = certificateLines();
  assert.equal(lines.length, 3, JSON.stringify(logs.lines()));
  assert.match(JSON.stringify(lines[0]), /expired/);
  assert.match(JSON.stringify(lines[1]), /not valid yet/);
  assert.match(JSON.stringify(lines[2]), /expired/);
  for (const line of lines) assert.equal(line.level, "WARN");
  assert.equal(lines[0]!.not_after, new Date(Math.floor((now - hour) / 1000) * 1000).toISOString());
});

Deno.test("close cuts at once the calls still waiting for their request message, token or not, so they do not hold the shutdown", async () => {
  const server = await start(fakeReadiness(true).source, TOKEN, { shutdownTimeoutMs: 5_000 });
  const calls = [
    rawCall(server.port, "/grpc.health.v1.Health/Check"),
    rawCall(server.port, "/chat.admin.v1.ChatAdmin/GetStats", {
      headers: { authorization: `Bearer ${TOKEN}` },
    }),
  ];
  try {
    const statuses = calls.map((call) => {
      call.stream.on("data", () => {});
      const status = statusOf(call.stream);
      call.stream.write(partialMessage(100));
      return status;
    });
    // both calls have reached the server
    await new Promise((resolve) => setTimeout(resolve, 200));
    await within(server.close(), 1_000, "the end of close");
    assert.deepEqual(
      await within(Promise.all(statuses), 1_000, "the statuses"),
      [Status.UNAVAILABLE, Status.UNAVAILABLE],
    );
  } finally {
    await server.close();
    // a session the server cut when it forced its shutdown never reports its close
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(calls.map((call) => call.close())),
      new Promise((resolve) => timer = setTimeout(resolve, 1_000)),
    ]);
    clearTimeout(timer);
  }
});

Deno.test("health calls sent whole, more at once than may wait for their request message, are all answered: the bound cuts only calls that keep waiting", async () => {
  const server = await start(fakeReadiness(true).source, TOKEN, { maxWaitingCalls: 3 });
  using client = await createAdminClient(`127.0.0.1:${server.port}`, { token: null });
  try {
    // one connection: the calls' headers come together, ahead of their messages
    const answers = await Promise.allSettled(Array.from({ length: 20 }, () => client.health()));
    assert.deepEqual(
      answers.map((answer) => answer.status === "fulfilled" ? answer.value : String(answer.reason)),
      Array(20).fill("SERVING"),
    );
  } finally {
    await server.close();
  }
});
