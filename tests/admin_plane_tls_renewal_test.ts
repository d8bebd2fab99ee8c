import assert from "node:assert/strict";
import { configureLogging } from "../observability/log.ts";
import { CERTIFICATE_RENEWED, RENEWAL_REFUSED } from "../grpc/certificate_renewal.ts";
import { createAdminClient, failure, Status } from "./support/admin_client.ts";
import { startCluster } from "./support/service.ts";
import { createCertificate } from "./support/tls_certificates.ts";
import { createWatch } from "./support/wait.ts";

// A file of its own, as admin_plane_tls_test.ts: a client's failed TLS connection leaves a
// grpc-js timer running after the test (see there), so both sanitizers are off.
Deno.test({
  name:
    "renewed GRPC_TLS_CERT and GRPC_TLS_KEY files are served to new connections without a restart; a pair that cannot be served is warned of once and the one before kept",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const lines: string[] = [];
  const decoder = new TextDecoder();
  const logged = createWatch();
  await using _logging = await configureLogging("info", {
    write: (bytes) => {
      lines.push(decoder.decode(bytes));
      logged.changed();
    },
  });
  const renewalLines = () =>
    lines.join("").split("\n").filter(Boolean).map((line) => JSON.parse(line))
      .filter((line) => line.message === CERTIFICATE_RENEWED || line.message === RENEWAL_REFUSED);
  const dir = await Deno.makeTempDir();
  try {
    const first = await createCertificate();
    const renewed = await createCertificate();
    await Deno.writeTextFile(`${dir}/cert.pem`, first.cert);
    await Deno.writeTextFile(`${dir}/key.pem`, first.key);
    await using cluster = await startCluster({
      grpc: true,
      env: {
        GRPC_TLS_CERT: `${dir}/cert.pem`,
        GRPC_TLS_KEY: `${dir}/key.pem`,
        GRPC_TLS_RELOAD_SECONDS: "0.1",
      },
    });
    const address = cluster.main.grpcAddress!;
    const client = (ca: string) =>
      createAdminClient(address, {
        token: cluster.adminToken,
        // node's TLS takes no IP address as the server name
        tls: { ca: new TextEncoder().encode(ca), serverName: "localhost" },
      });
    using before = await client(first.cert);
    await before.call("GetStats");

    // the certificate renewed, its key not yet: not served
    await Deno.writeTextFile(`${dir}/cert.pem`, renewed.cert);
    await logged.until(() => renewalLines()[0], "the refused pair's warning", 5_000);
    // readings go on every 0.1 s: none warns again
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(
      renewalLines().map((line) => [line.level, line.message, line.GRPC_TLS_KEY]),
      [["WARN", RENEWAL_REFUSED, "is not the key of GRPC_TLS_CERT's first certificate"]],
    );
    {
      using stillFirst = await client(first.cert);
      await stillFirst.call("GetStats");
    }

    await Deno.writeTextFile(`${dir}/key.pem`, renewed.key);
    const renewal = await logged.until(
      () => renewalLines().find((line) => line.message === CERTIFICATE_RENEWED),
      "the renewal",
      5_000,
    );
    assert.equal(renewal.level, "INFO");
    assert.ok(Date.parse(renewal.not_after) > Date.now(), JSON.stringify(renewal));
    using after = await client(renewed.cert);
    const stats = await after.call("GetStats");
    assert.equal(stats.instance_id, cluster.main.service.instanceId);
    // the connection made before the renewal goes on; a new one with the old trust is refused
    await before.call("GetStats");
    using old = await client(first.cert);
    assert.equal((await failure(old.call("GetStats"))).code, Status.UNAVAILABLE);
    assert.equal(renewalLines().length, 2, JSON.stringify(renewalLines()));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
