/**
 * A loopback port nothing listens on right now, for a process that must be told its port
 * in advance (`PORT=0` would leave the test unable to find it).
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}
