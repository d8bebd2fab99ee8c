import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Buffer } from "node:buffer";
import { fileURLToPath } from "node:url";
import { loadAdminProto, LOADER_OPTIONS } from "../../grpc/proto.ts";
import { within } from "./wait.ts";

// deno-lint-ignore no-explicit-any
export type Reply = Record<string, any>;

/**
 * Per call: the token (null: no authorization metadata) or a raw authorization value, and a
 * deadline in milliseconds from now.
 */
export interface CallOptions {
  token?: string | null;
  authorization?: string;
  deadlineMs?: number;
}

/** A gRPC client of the admin plane built from proto/chat/admin/v1/admin.proto, as any would be. */
export interface AdminClient extends Disposable {
  /** A unary ChatAdmin call; rejects with the grpc-js ServiceError. */
  call(method: string, request?: object, options?: CallOptions): Promise<Reply>;
  /** Every page of a list call, following next_page_token. */
  pages(method: string, request: object, field: string): Promise<Reply[][]>;
  /** A WatchEvents stream. */
  watch(request?: object, options?: CallOptions): grpc.ClientReadableStream<Reply>;
  /** A grpc.health.v1.Health/Watch stream; each message carries a serving status name. */
  watchHealth(service?: string): grpc.ClientReadableStream<Reply>;
  /**
   * grpc.health.v1.Health/Check; the serving status name. With `waitForReady` the call waits
   * through failed connection attempts (reconnecting with grpc-js backoff) until `deadlineMs`.
   */
  health(
    service?: string,
    options?: { deadlineMs?: number; waitForReady?: boolean },
  ): Promise<string>;
  /** An open grpc.reflection.v1 stream, for the caller to write to and end. */
  openReflection(): grpc.ClientDuplexStream<object, Reply>;
  /** grpc.reflection.v1 requests, one stream, answers in order. */
  reflect(requests: object[]): Promise<Reply[]>;
  close(): void;
}

type Constructor = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => grpc.Client;

const REFLECTION_PROTO = fileURLToPath(new URL("./reflection.proto", import.meta.url));

// deno-lint-ignore no-explicit-any
const lookup = (root: any, name: string): Constructor =>
  name.split(".").reduce((node, part) => node[part], root);

/** Connects to `address` (host:port); `tls.ca` makes it a TLS channel trusting that CA. */
export async function createAdminClient(
  address: string,
  options: { token: string | null; tls?: { ca: Uint8Array; serverName?: string } },
): Promise<AdminClient> {
  const root = grpc.loadPackageDefinition(await loadAdminProto());
  const reflectionRoot = grpc.loadPackageDefinition(
    await protoLoader.load(REFLECTION_PROTO, LOADER_OPTIONS),
  );
  const credentials = options.tls
    ? grpc.credentials.createSsl(Buffer.from(options.tls.ca))
    : grpc.credentials.createInsecure();
  const channelOptions: grpc.ChannelOptions = options.tls?.serverName
    ? { "grpc.ssl_target_name_override": options.tls.serverName }
    : {};
  const admin = new (lookup(root, "chat.admin.v1.ChatAdmin"))(address, credentials, channelOptions);
  const health = new (lookup(root, "grpc.health.v1.Health"))(address, credentials, channelOptions);
  const reflection = new (lookup(reflectionRoot, "grpc.reflection.v1.ServerReflection"))(
    address,
    credentials,
    channelOptions,
  );

  function metadata(callOptions: CallOptions = {}): grpc.Metadata {
    const result = new grpc.Metadata();
    const token = callOptions.token === undefined ? options.token : callOptions.token;
    if (callOptions.authorization !== undefined) {
      result.set("authorization", callOptions.authorization);
    } else if (token !== null) result.set("authorization", `Bearer ${token}`);
    return result;
  }

  const deadline = (callOptions: CallOptions = {}): grpc.CallOptions =>
    callOptions.deadlineMs === undefined ? {} : { deadline: Date.now() + callOptions.deadlineMs };

  // deno-lint-ignore no-explicit-any
  const method = (client: grpc.Client, name: string) => (client as any)[name].bind(client);

  const client: AdminClient = {
    call(name, request = {}, callOptions) {
      return within(
        new Promise<Reply>((resolve, reject) => {
          method(admin, name)(
            request,
            metadata(callOptions),
            deadline(callOptions),
            (error: grpc.ServiceError | null, reply: Reply) =>
              error ? reject(error) : resolve(reply),
          );
        }),
        10_000,
        `the reply to ${name}`,
      );
    },
    async pages(name, request, field) {
      const pages: Reply[][] = [];
      let page_token = "";
      do {
        const reply = await client.call(name, { ...request, page_token });
        pages.push(reply[field]);
        page_token = reply.next_page_token;
      } while (page_token !== "" && pages.length < 1000);
      return pages;
    },
    watch(request = {}, callOptions) {
      return method(admin, "WatchEvents")(request, metadata(callOptions), deadline(callOptions));
    },
    watchHealth(service = "") {
      return method(health, "Watch")({ service });
    },
    health(service = "", healthOptions = {}) {
      return within(
        new Promise<string>((resolve, reject) => {
          method(health, "Check")(
            { service },
            new grpc.Metadata({ waitForReady: healthOptions.waitForReady ?? false }),
            deadline(healthOptions),
            (error: grpc.ServiceError | null, reply: Reply) =>
              error ? reject(error) : resolve(reply.status),
          );
        }),
        10_000,
        "the health check",
      );
    },
    openReflection() {
      return method(reflection, "ServerReflectionInfo")();
    },
    reflect(requests) {
      if (requests.length === 0) return Promise.resolve([]);
      const stream = client.openReflection();
      const answers: Reply[] = [];
      const done = new Promise<Reply[]>((resolve, reject) => {
        stream.on("data", (reply: Reply) => {
          answers.push(reply);
          if (answers.length === requests.length) stream.end();
        });
        stream.on("end", () => resolve(answers));
        stream.on("error", reject);
      });
      for (const request of requests) stream.write(request);
      return within(done, 10_000, "the reflection answers");
    },
    close() {
      admin.close();
      health.close();
      reflection.close();
    },
    [Symbol.dispose]() {
      client.close();
    },
  };
  return client;
}

/** The grpc-js error of a call that should fail, or a failure naming what succeeded. */
export async function failure(call: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await call;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error("expected the call to fail, and it succeeded");
}

export { status as Status } from "@grpc/grpc-js";
