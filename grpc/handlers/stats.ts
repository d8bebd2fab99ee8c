import type { AdminStore } from "../../chat/ports.ts";

/** GetStats: totals from the database, connections of this instance. */
export function createStatsHandlers(deps: {
  queries: AdminStore;
  activeConnections: () => number;
  instanceId: string;
}) {
  return {
    async GetStats(_request: unknown, signal: AbortSignal) {
      const { chats, messages } = await deps.queries.stats({ signal });
      return {
        chats,
        messages,
        active_connections: deps.activeConnections(),
        instance_id: deps.instanceId,
      };
    },
  };
}
