import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Base64UrlPaddedCodec } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import assert from "node:assert/strict";
import { natsBucket, paddedFixture, sha256Hex } from "../tests/support/media.ts";
import { TEST_NATS_URL } from "../tests/support/service.ts";
import { MediaError } from "./errors.ts";
import { createNatsMediaStore } from "./nats_media_store.ts";

const limits = { image: 10_000_000, audio: 10_000_000, video: 10_000_000 };

Deno.test("NATS media store: an upload that fails after its bytes were written leaves nothing behind", async () => {
  await using bucket = natsBucket();
  const store = await createNatsMediaStore({
    servers: TEST_NATS_URL,
    bucket: bucket.name,
    storage: "memory",
  });
  const nc = await connect({ servers: TEST_NATS_URL });
  try {
    const file = await paddedFixture("video.mp4", 300_000);
    file.set(crypto.getRandomValues(new Uint8Array(1_000)), 100_000);
    // metadata no reader can parse under the file's name: the store's look-up for it, made
    // once the upload is written, fails
    const meta = `$O.${bucket.name}.M.${Base64UrlPaddedCodec.encode(sha256Hex(file))}`;
    await jetstream(nc).publish(meta, "not json");

    await assert.rejects(
      store.put(file, { kind: "video", limits }),
      (error) => error instanceof MediaError && error.code === "unavailable",
    );
    // the upload's chunks and metadata go, after the answer
    const jsm = await jetstreamManager(nc);
    const deadline = Date.now() + 10_000;
    while (true) {
      const { state } = await jsm.streams.info(`OBJ_${bucket.name}`, { subjects_filter: ">" });
      const subjects = Object.keys(state.subjects ?? {});
      if (subjects.length === 1 && subjects[0] === meta) break;
      if (Date.now() > deadline) assert.fail(`kept: ${subjects.join(", ")}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } finally {
    await nc.close();
    await store.close();
  }
});
