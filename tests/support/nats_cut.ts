import { startNatsServer } from "./nats_server.ts";
import { startCluster } from "./service.ts";
import { startTcpProxy } from "./tcp_proxy.ts";

/**
 * Two instances on a NATS server of their own: the first reaches it directly, the second
 * through a proxy the test can cut.
 */
export async function natsCutToSecondInstance(
  env: Record<string, string> = {},
  options: { grpc?: boolean } = {},
) {
  const nats = await startNatsServer();
  const proxy = startTcpProxy(nats.url);
  const cluster = await startCluster({ instances: 0, env, ...options });
  const setup = {
    cluster,
    proxy,
    /** The server's own URL, for instances that reach it directly. */
    natsUrl: nats.url,
    async [Symbol.asyncDispose]() {
      await cluster[Symbol.asyncDispose]();
      await proxy[Symbol.asyncDispose]();
      await nats[Symbol.asyncDispose]();
    },
  };
  try {
    await cluster.startInstance({ NATS_URL: nats.url });
    await cluster.startInstance({ NATS_URL: proxy.url });
  } catch (error) {
    await setup[Symbol.asyncDispose]();
    throw error;
  }
  return setup;
}
