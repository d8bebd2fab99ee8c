import assert from "node:assert/strict";
import { readTlsPair, type TlsPair } from "../config_tls.ts";
import { configureLogging } from "../observability/log.ts";
import { createCertificate } from "../tests/support/tls_certificates.ts";
import { createWatch, within } from "../tests/support/wait.ts";
import { followCertificateRenewal, RENEWAL_REFUSED } from "./certificate_renewal.ts";

/**
 * GRPC_TLS_CERT and GRPC_TLS_KEY files in a directory of their own, followed every 20 ms as the
 * service follows them; `readings` counts the readings, `renewed` holds the pairs served since
 * and `warnings` the renewals refused. `refuse` may throw as the TLS front's renew does.
 */
async function followFiles(served: TlsPair, refuse?: (pair: TlsPair) => void) {
  const dir = await Deno.makeTempDir();
  const paths = { cert: `${dir}/cert.pem`, key: `${dir}/key.pem` };
  await Deno.writeTextFile(paths.cert, served.cert);
  await Deno.writeTextFile(paths.key, served.key);
  const lines: string[] = [];
  const decoder = new TextDecoder();
  const logging = await configureLogging("info", {
    write: (bytes) => void lines.push(decoder.decode(bytes)),
  });
  const changed = createWatch();
  let readings = 0;
  const renewed: TlsPair[] = [];
  const renewal = followCertificateRenewal({
    served,
    async read(signal) {
      const read = await readTlsPair(paths.cert, paths.key, signal);
      readings += 1;
      changed.changed();
      return read;
    },
    renew(pair) {
      refuse?.(pair);
      renewed.push(pair);
      changed.changed();
    },
    everyMs: 20,
  });
  return {
    paths,
    renewed,
    warnings: () =>
      lines.join("").split("\n").filter(Boolean).map((line) => JSON.parse(line))
        .filter((line) => line.message === RENEWAL_REFUSED),
    /** Resolves once a reading has been taken after this call. */
    async nextReading() {
      const after = readings;
      await changed.until(() => readings > after || undefined, "a reading", 2_000);
    },
    until: changed.until,
    async [Symbol.asyncDispose]() {
      await renewal.stop();
      await logging[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("a chain file read while it is being written (its leaf there, its issuer not yet) is not served", async () => {
  const first = await createCertificate();
  const issuer = await createCertificate();
  const chained = await createCertificate("ec", { issuer });
  await using files = await followFiles(first);
  const leaf = chained.cert.slice(0, chained.cert.length - issuer.cert.length);
  // `cat leaf.pem issuer.pem > cert.pem`: the leaf written, the issuer not yet
  Deno.writeTextFileSync(files.paths.key, chained.key);
  Deno.writeTextFileSync(files.paths.cert, leaf);
  await files.nextReading();
  Deno.writeTextFileSync(files.paths.cert, chained.cert);
  await files.until(() => files.renewed[0], "the renewal");
  assert.deepEqual(
    files.renewed.map((pair) => pair.cert === chained.cert ? "the whole chain" : "the leaf alone"),
    ["the whole chain"],
  );
});

Deno.test("a key file read while it is being written (emptied, not yet filled) is not warned of", async () => {
  const first = await createCertificate();
  const renewed = await createCertificate();
  await using files = await followFiles(first);
  // written in place: opened (emptied), then filled
  Deno.writeTextFileSync(files.paths.cert, renewed.cert);
  Deno.writeTextFileSync(files.paths.key, "");
  await files.nextReading();
  Deno.writeTextFileSync(files.paths.key, renewed.key);
  await files.until(() => files.renewed[0], "the renewal");
  assert.deepEqual(files.warnings(), []);
  assert.equal(files.renewed[0]?.cert, renewed.cert);
});

Deno.test("a renewed pair the TLS front could not open at one reading (out of descriptors) is served at a later one, warned of once", async () => {
  const first = await createCertificate();
  const renewed = await createCertificate();
  let attempts = 0;
  await using files = await followFiles(first, () => {
    attempts += 1;
    // what Deno.listenTls throws while the process is out of file descriptors
    if (attempts === 1) throw new Error("Too many open files (os error 24)");
  });
  Deno.writeTextFileSync(files.paths.cert, renewed.cert);
  Deno.writeTextFileSync(files.paths.key, renewed.key);
  await files.until(() => files.renewed[0], "the renewal");
  assert.equal(files.renewed[0]?.cert, renewed.cert);
  assert.deepEqual(files.warnings().map((line) => line.error), [
    "Too many open files (os error 24)",
  ]);
});

Deno.test("a pair that cannot be served is warned of again when it comes back after the files were put back to the pair served", async () => {
  const first = await createCertificate();
  const other = await createCertificate();
  await using files = await followFiles(first);
  const keyOf = (warnings: Array<Record<string, string>>) =>
    warnings.map((line) => line.GRPC_TLS_KEY);
  Deno.writeTextFileSync(files.paths.key, other.key);
  await files.until(() => files.warnings()[0], "the first warning");
  // put back: the pair served is read again
  Deno.writeTextFileSync(files.paths.key, first.key);
  await files.nextReading();
  await files.nextReading();
  Deno.writeTextFileSync(files.paths.key, other.key);
  await files.until(() => files.warnings()[1], "the second warning");
  assert.deepEqual(keyOf(files.warnings()), [
    "is not the key of GRPC_TLS_CERT's first certificate",
    "is not the key of GRPC_TLS_CERT's first certificate",
  ]);
  assert.deepEqual(files.renewed, []);
});

Deno.test("a file whose reading blocks (a FIFO, a hung file system) holds no event loop, and stopping ends the reading", async () => {
  const first = await createCertificate();
  const dir = await Deno.makeTempDir();
  const paths = { cert: `${dir}/cert.pem`, key: `${dir}/key.pem` };
  await Deno.writeTextFile(paths.cert, first.cert);
  const mkfifo = await new Deno.Command("mkfifo", { args: [paths.key] }).output();
  assert.ok(mkfifo.success);
  let started = 0;
  const renewal = followCertificateRenewal({
    served: first,
    read(signal) {
      started += 1;
      return readTlsPair(paths.cert, paths.key, signal);
    },
    renew: () => assert.fail("nothing to renew"),
    everyMs: 20,
  });
  try {
    // a reading under way, blocked on the FIFO: timers still run
    const ticks = await new Promise<number>((resolve) => {
      let count = 0;
      const ticker = setInterval(() => {
        count += 1;
        if (count === 10) {
          clearInterval(ticker);
          resolve(count);
        }
      }, 10);
    });
    assert.equal(ticks, 10);
    assert.equal(started, 1, "one reading at a time");
    await within(renewal.stop(), 1_000, "the stop to end the blocked reading");
  } finally {
    await renewal.stop();
    // the thread still blocked in the FIFO's open: a writer lets it go
    (await Deno.open(paths.key, { write: true })).close();
    await Deno.remove(dir, { recursive: true });
  }
});
