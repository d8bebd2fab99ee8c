import assert from "node:assert/strict";
import { overFrameLimit, utf8ByteLength } from "./frame_size.ts";

const encodedLength = (text: string) => new TextEncoder().encode(text).length;

Deno.test("utf8ByteLength() matches TextEncoder for ASCII, 2-, 3- and 4-byte characters and lone surrogates", () => {
  for (
    const text of [
      "",
      "plain ascii",
      "é".repeat(40_000),
      "€".repeat(20_000) + "x",
      "😀".repeat(30_000),
      // a pair that straddles the 16 Ki unit chunk boundary
      "x".repeat(16 * 1024 - 1) + "😀" + "y",
      "lone \ud800 high, lone \udc00 low",
    ]
  ) {
    assert.equal(utf8ByteLength(text), encodedLength(text));
  }
});

Deno.test("overFrameLimit() counts a text frame in UTF-8 bytes, not UTF-16 code units", () => {
  const limit = 3000;
  const atLimit = "€".repeat(999) + "xxx";
  assert.equal(encodedLength(atLimit), limit);
  assert.equal(overFrameLimit(atLimit, limit), false);
  assert.equal(overFrameLimit(atLimit + "x", limit), true);
  assert.equal(overFrameLimit("😀".repeat(751), limit), true);
  assert.equal(overFrameLimit("x".repeat(limit), limit), false);
  assert.equal(overFrameLimit("x".repeat(limit + 1), limit), true);
  assert.equal(overFrameLimit(new ArrayBuffer(limit + 1), limit), true);
  assert.equal(overFrameLimit(new ArrayBuffer(limit), limit), false);
});
