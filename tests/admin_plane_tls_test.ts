import assert from "node:assert/strict";
import { createAdminClient, failure, Status } from "./support/admin_client.ts";
import { startCluster } from "./support/service.ts";
import { createCertificate } from "./support/tls_certificates.ts";

// A file of its own, and the only test in it: the plain client's failed connection leaves a
// grpc-js timer running after the test, which would fail whichever test ran next.
Deno.test({
  name: "the admin plane speaks TLS with GRPC_TLS_CERT and GRPC_TLS_KEY",
  // grpc-js 1.14 leaves the backoff timer of a subchannel whose connection failed running after
  // client.close() (it unrefs it and does not stop it; when it fires, the subchannel connects
  // once more and starts another): no public API ends it. Both sanitizers report a timer, so
  // both are off here.
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { cert, key } = await createCertificate();
    await Deno.writeTextFile(`${dir}/cert.pem`, cert);
    await Deno.writeTextFile(`${dir}/key.pem`, key);
    await using cluster = await startCluster({
      grpc: true,
      env: { GRPC_TLS_CERT: `${dir}/cert.pem`, GRPC_TLS_KEY: `${dir}/key.pem` },
    });
    const address = cluster.main.grpcAddress!;
    using secure = await createAdminClient(address, {
      token: cluster.adminToken,
      // node's TLS takes no IP address as the server name
      tls: { ca: await Deno.readFile(`${dir}/cert.pem`), serverName: "localhost" },
    });
    const stats = await secure.call("GetStats");
    assert.equal(stats.instance_id, cluster.main.service.instanceId);
    using plain = await createAdminClient(address, { token: cluster.adminToken });
    const error = await failure(plain.call("GetStats"));
    assert.equal(error.code, Status.UNAVAILABLE);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
