import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * Every instrument of one service instance, on a registry of its own: two instances in one
 * process (tests) never share a counter. Layers receive the few instruments they feed (see
 * {@link SocketMetrics}, {@link MediaMetrics}, {@link StoreMetrics}); only the composition root
 * sees all of them.
 */
export interface Metrics {
  readonly registry: Registry;
  /** The `content-type` of {@link Metrics.text}. */
  readonly contentType: string;
  /** Open WebSockets, by `endpoint` (`chat`, `chats`). */
  readonly openSockets: Gauge<"endpoint">;
  /** Messages written to the store (repeats of a `client_id` are not), by `media_type`. */
  readonly messagesStored: Counter<"media_type">;
  /** Chat events written to a socket, by frame `type`. */
  readonly eventsDelivered: Counter<"type">;
  /** Client actions handled, by `action` and `outcome` (`ok` or the error code sent). */
  readonly actions: Counter<"action" | "outcome">;
  /** `error` frames sent, by `code`, including frames that never became an action. */
  readonly errors: Counter<"code">;
  /** From the publisher's `envelope.sent_at` to the socket send, in seconds. */
  readonly fanoutLatency: Histogram;
  /** One store operation (a query or a transaction), by `operation` and `outcome`. */
  readonly dbQueryDuration: Histogram<"operation" | "outcome">;
  /** Times the NATS connection came back after a loss. */
  readonly natsReconnects: Counter;
  /** Sockets checked against the store after a bus reconnect, by `outcome`. */
  readonly accessChecks: Counter<"outcome">;
  /** Sockets screened against bans and disconnects after a bus reconnect, by `outcome`. */
  readonly sanctionScreens: Counter<"outcome">;
  /** Messages that reached sockets only through the feed's sweep of the store. */
  readonly messagesRecovered: Counter;
  readonly amendmentsRecovered: Counter;
  readonly readTalliesDiffering: Counter;
  /**
   * Media requests let in and not yet done, by `route` (`upload`, `download`) and `via`
   * (`http`: `/v1/media`; `socket`: base64 media in `send_message`, which holds an upload place).
   */
  readonly mediaOpenRequests: Gauge<"route" | "via">;
  /**
   * Media requests refused over a per-user limit, by `route`, `limit` (`rate`, `concurrency`)
   * and `via`: a 429 over HTTP, a `rate_limited` error frame over a socket.
   */
  readonly mediaRateLimited: Counter<"route" | "limit" | "via">;
  /** Uploads of instances killed mid-upload, deleted by the media store's sweep. */
  readonly mediaUploadsSwept: Counter;
  /**
   * Deleted by the sweep of unsent media: media past its retention (`media`), files no media
   * names (`blobs`), and bytes stored long ago that no catalogue row names (`files`).
   */
  readonly mediaUnsentSwept: Counter<"deleted">;
  /** Sweeps of unsent media that did nothing, another instance's being under way. */
  readonly mediaUnsentSweepsSkipped: Counter;
  /** The Prometheus text exposition of every instrument. */
  text(): Promise<string>;
}

/** What the WebSocket plane feeds. */
export type SocketMetrics = Pick<
  Metrics,
  | "openSockets"
  | "eventsDelivered"
  | "actions"
  | "errors"
  | "fanoutLatency"
  | "accessChecks"
  | "sanctionScreens"
>;

/** What the media HTTP routes and base64 media in socket frames feed. */
export type MediaMetrics = Pick<Metrics, "mediaOpenRequests" | "mediaRateLimited">;

/** What the store feeds. */
export type StoreMetrics = Pick<Metrics, "dbQueryDuration" | "messagesStored">;

/** Seconds; fan-out is a few milliseconds on one instance, tens across NATS. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * Creates the instruments on a fresh registry. Nothing runs in the background: event-loop
 * lag and memory are sampled when `/metrics` is scraped.
 */
export function createMetrics(): Metrics {
  const registry = new Registry();
  const registers = [registry];

  new Gauge({
    name: "chat_event_loop_lag_seconds",
    help: "How late a zero-delay timer fires, sampled at scrape time",
    registers,
    async collect() {
      const start = performance.now();
      await new Promise((resolve) => setTimeout(resolve, 0));
      this.set((performance.now() - start) / 1000);
    },
  });
  new Gauge({
    name: "chat_process_memory_bytes",
    help: "Process memory by kind (rss, heap_total, heap_used, external)",
    labelNames: ["kind"] as const,
    registers,
    collect() {
      const usage = Deno.memoryUsage();
      this.set({ kind: "rss" }, usage.rss);
      this.set({ kind: "heap_total" }, usage.heapTotal);
      this.set({ kind: "heap_used" }, usage.heapUsed);
      this.set({ kind: "external" }, usage.external);
    },
  });

  return {
    registry,
    contentType: registry.contentType,
    openSockets: new Gauge({
      name: "chat_ws_open_sockets",
      help: "Open WebSockets by endpoint",
      labelNames: ["endpoint"] as const,
      registers,
    }),
    messagesStored: new Counter({
      name: "chat_messages_stored_total",
      help: "Messages written to the database",
      labelNames: ["media_type"] as const,
      registers,
    }),
    eventsDelivered: new Counter({
      name: "chat_events_delivered_total",
      help: "Chat events written to a socket, by frame type",
      labelNames: ["type"] as const,
      registers,
    }),
    actions: new Counter({
      name: "chat_ws_actions_total",
      help: "Client actions handled, by action and outcome (ok or the error code)",
      labelNames: ["action", "outcome"] as const,
      registers,
    }),
    errors: new Counter({
      name: "chat_ws_errors_total",
      help: "Error frames sent to clients, by code",
      labelNames: ["code"] as const,
      registers,
    }),
    fanoutLatency: new Histogram({
      name: "chat_fanout_latency_seconds",
      help: "From envelope.sent_at at the publisher to the socket send",
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    dbQueryDuration: new Histogram({
      name: "chat_db_query_duration_seconds",
      help: "Duration of one store operation (a query or a transaction)",
      labelNames: ["operation", "outcome"] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    natsReconnects: new Counter({
      name: "chat_nats_reconnects_total",
      help: "Times the NATS connection was re-established",
      registers,
    }),
    accessChecks: new Counter({
      name: "chat_access_checks_total",
      help: "Sockets checked against the store after a bus reconnect, by outcome",
      labelNames: ["outcome"] as const,
      registers,
    }),
    sanctionScreens: new Counter({
      name: "chat_sanction_screens_total",
      help:
        "Sockets screened against bans and operator disconnects after a bus reconnect, by outcome",
      labelNames: ["outcome"] as const,
      registers,
    }),
    messagesRecovered: new Counter({
      name: "chat_messages_recovered_total",
      help: "Messages stored but never heard on the bus, delivered from the store by a sweep",
      registers,
    }),
    amendmentsRecovered: new Counter({
      name: "chat_amendments_recovered_total",
      help:
        "Edits, deletions and read marks stored but never heard on the bus, sent again by a sweep",
      registers,
    }),
    readTalliesDiffering: new Counter({
      name: "chat_read_tallies_differing_total",
      help:
        "Chats followed through a sweep's window whose read marks the store tallied differently from those delivered",
      registers,
    }),
    mediaOpenRequests: new Gauge({
      name: "chat_media_open_requests",
      help:
        "Media requests let in and not yet done (a download until its body is sent), by route and via (http: /v1/media; socket: base64 media in send_message)",
      labelNames: ["route", "via"] as const,
      registers,
    }),
    mediaRateLimited: new Counter({
      name: "chat_media_rate_limited_total",
      help:
        "Media requests refused over a per-user limit, by route, limit (rate or concurrency) and via (http: a 429; socket: a rate_limited error frame)",
      labelNames: ["route", "limit", "via"] as const,
      registers,
    }),
    mediaUploadsSwept: new Counter({
      name: "chat_media_uploads_swept_total",
      help: "Uploads left by an instance that ended mid-upload, deleted by the media store's sweep",
      registers,
    }),
    mediaUnsentSwept: new Counter({
      name: "chat_media_unsent_swept_total",
      help: "Media never sent, deleted after MEDIA_UNSENT_RETENTION_HOURS (media), the files " +
        "no media named any more, deleted with their bytes (blobs), and the bytes of files " +
        "stored long ago that no catalogue row named (files)",
      labelNames: ["deleted"] as const,
      registers,
    }),
    mediaUnsentSweepsSkipped: new Counter({
      name: "chat_media_unsent_sweeps_skipped_total",
      help: "Sweeps of unsent media this instance skipped, as another instance's was under way " +
        "(one sweeps at a time)",
      registers,
    }),
    text: () => registry.metrics(),
  };
}
