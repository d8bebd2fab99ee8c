import {
  type handleBidiStreamingCall,
  type Server,
  type ServerDuplexStream,
  status as Status,
} from "@grpc/grpc-js";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";

/**
 * Reflection streams open at once, by default. Reflection answers without a token, and each
 * stream holds memory (about 10 KiB, and up to its unread answers) for as long as its client
 * keeps it: without a bound, one client opening streams could take the process's memory. Tools
 * such as grpcurl open one stream per command and close it.
 */
export const MAX_REFLECTION_STREAMS = 100;

type ReflectionCall = ServerDuplexStream<unknown, unknown>;

/**
 * Server reflection (grpc.reflection.v1 and v1alpha) of `definition` on `server`, so that tools
 * need no proto file. A stream past `maxStreams` open ones (MAX_REFLECTION_STREAMS) ends at once
 * with RESOURCE_EXHAUSTED. Each answer (a few KiB of descriptors for a request of a few bytes)
 * waits for its client to read the ones before: a stream is read no further while the answers
 * it has not read fill its buffer, so a client that asks without reading is held back by HTTP/2
 * flow control rather than having the server queue its answers without end. `close` ends the
 * open streams with UNAVAILABLE and refuses new ones: a tool left attached keeps its stream open,
 * which would hold the server's graceful shutdown until it is forced.
 */
export function addReflection(
  server: Server,
  definition: PackageDefinition,
  options: { maxStreams?: number } = {},
): { close(): void } {
  const maxStreams = options.maxStreams ?? MAX_REFLECTION_STREAMS;
  const open = new Set<ReflectionCall>();
  let closed = false;
  const shuttingDown = {
    code: Status.UNAVAILABLE,
    details: "the server is shutting down; ask again",
  };
  new ReflectionService(definition).addToServer({
    addService(service, implementation) {
      const answer = implementation.ServerReflectionInfo as handleBidiStreamingCall<
        unknown,
        unknown
      >;
      server.addService(service, {
        ServerReflectionInfo: ((call) => {
          if (closed) return void call.emit("error", shuttingDown);
          if (open.size >= maxStreams) {
            return void call.emit("error", {
              code: Status.RESOURCE_EXHAUSTED,
              details: "too many reflection streams open; close the ones no longer used",
            });
          }
          open.add(call);
          const forget = () => open.delete(call);
          call.once("cancelled", forget);
          call.once("finish", forget);
          const write = call.write.bind(call);
          call.write = ((...args: Parameters<typeof write>) => {
            const room = write(...args);
            if (!room && !call.isPaused()) {
              call.pause();
              call.once("drain", () => call.resume());
            }
            return room;
          }) as typeof call.write;
          answer(call);
        }) satisfies handleBidiStreamingCall<unknown, unknown>,
      });
    },
  });
  return {
    close() {
      closed = true;
      for (const call of open) call.emit("error", shuttingDown);
      open.clear();
    },
  };
}
