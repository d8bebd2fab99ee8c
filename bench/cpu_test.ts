import assert from "node:assert/strict";
import postgres from "postgres";
import { TEST_DATABASE_URL } from "../tests/support/database.ts";
import { cpuUse, readCpu } from "./cpu.ts";

Deno.test("readCpu() reads this process's CPU time and the machine's", async () => {
  // spin a little, so that this process has used at least a tick
  const until = performance.now() + 30;
  while (performance.now() < until) Math.sqrt(Math.random());
  const reading = await readCpu(Deno.pid);
  assert.ok(reading.service !== null && reading.service > 0, `service ${reading.service}`);
  assert.ok(reading.machineTotal > reading.machineBusy && reading.machineBusy > 0);
  // the bench's own process makes the load
  assert.equal(reading.loadGenerator, reading.service);
  assert.equal((await readCpu(null)).service, null);
});

Deno.test("cpuUse() gives milliseconds per 1,000 messages and the machine's busy share", () => {
  const from = { service: 10, postgres: 4, loadGenerator: 1, machineBusy: 100, machineTotal: 200 };
  const to = {
    service: 13,
    postgres: 5.5,
    loadGenerator: 2.2,
    machineBusy: 115,
    machineTotal: 220,
  };
  assert.deepEqual(cpuUse(from, to, 6_000), {
    serviceMsPerThousand: 500,
    postgresMsPerThousand: 250,
    loadGeneratorMsPerThousand: 200,
    machineBusyPercent: 75,
  });
  assert.equal(cpuUse({ ...from, service: null }, to, 6_000).serviceMsPerThousand, null);
  assert.equal(cpuUse(from, to, 0).postgresMsPerThousand, 0);
});

Deno.test("readCpu() keeps the CPU time of a PostgreSQL backend that ended between two readings", async () => {
  const sql = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  const [{ pid }] = await sql<[{ pid: number }]>`select pg_backend_pid() as pid`;
  // about a second of the backend's CPU
  await sql`select count(*) from generate_series(1, 10000000)`;
  const before = await readCpu(null);
  await sql.end();
  // gone from /proc once the postmaster has reaped it
  for (;;) {
    try {
      await Deno.stat(`/proc/${pid}`);
    } catch {
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const after = await readCpu(null);
  // PostgreSQL's CPU time only grows: a backend's goes to the postmaster's children's time
  assert.ok(after.postgres >= before.postgres, `${before.postgres} s, then ${after.postgres} s`);
});
