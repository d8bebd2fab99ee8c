import type { ClientReadableStream } from "@grpc/grpc-js";
import type { Reply } from "./admin_client.ts";
import { within } from "./wait.ts";

/** A WatchEvents stream's events as they come, and how it ended. */
export function follow(stream: ClientReadableStream<Reply>) {
  const events: Reply[] = [];
  let wake = () => {};
  const ended = new Promise<{ code: number; details: string }>((resolve) => {
    stream.on("status", (status) => resolve(status));
    stream.on("error", () => {}); // the status says it
  });
  const headers = new Promise<void>((resolve) => stream.once("metadata", () => resolve()));
  stream.on("data", (event: Reply) => {
    events.push(event);
    wake();
  });
  return {
    events,
    ended,
    /**
     * Resolves once the server has subscribed (it sends the response headers then). Its
     * deadline starts when asked, so a stream refused before subscribing leaves none running.
     */
    get subscribed(): Promise<void> {
      return within(headers, 5_000, "the WatchEvents headers");
    },
    /** Waits for `count` events in all. */
    async take(count: number): Promise<Reply[]> {
      await within(
        new Promise<void>((resolve) => {
          wake = () => events.length >= count && resolve();
          wake();
        }),
        5_000,
        `${count} watch events`,
      );
      return events.slice(0, count);
    },
  };
}
