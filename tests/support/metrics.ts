import assert from "node:assert/strict";
import { sample } from "./service_process.ts";
import type { TestCluster } from "./service.ts";

/** One series of an instance's `/metrics` (`name{labels}` exactly as exposed); 0 if absent. */
export async function metric(cluster: TestCluster, instance: number, series: string) {
  const response = await fetch(`${cluster.instances[instance]!.httpUrl}/metrics`);
  return sample(await response.text(), series);
}

/** Waits until a metric of an instance reaches `atLeast`, read from its `/metrics`. */
export async function untilMetric(
  cluster: TestCluster,
  instance: number,
  series: string,
  atLeast: number,
) {
  const deadline = Date.now() + 10_000;
  while (await metric(cluster, instance, series) < atLeast) {
    if (Date.now() > deadline) {
      assert.fail(`${series} on instance ${instance} stayed under ${atLeast}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
