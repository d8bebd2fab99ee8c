import assert from "node:assert/strict";
import { noneMatch, parseRange, rangeStillValid } from "./http_range.ts";

Deno.test("parseRange() reads one byte range, clamped to the file", () => {
  assert.deepEqual(parseRange("bytes=0-99", 1000), { start: 0, end: 99 });
  assert.deepEqual(parseRange("bytes=500-", 1000), { start: 500, end: 999 });
  assert.deepEqual(parseRange("bytes=-100", 1000), { start: 900, end: 999 });
  assert.deepEqual(parseRange("bytes=-5000", 1000), { start: 0, end: 999 });
  assert.deepEqual(parseRange("bytes=900-5000", 1000), { start: 900, end: 999 });
  assert.deepEqual(parseRange("bytes=999-999", 1000), { start: 999, end: 999 });
  // range units are case-insensitive (RFC 9110 §14.1)
  assert.deepEqual(parseRange("Bytes=0-99", 1000), { start: 0, end: 99 });
  assert.deepEqual(parseRange("BYTES=-100", 1000), { start: 900, end: 999 });
});

Deno.test("parseRange() is unsatisfiable past the end, and ignores what it cannot serve", () => {
  assert.equal(parseRange("bytes=1000-", 1000), "unsatisfiable");
  assert.equal(parseRange("bytes=1000-2000", 1000), "unsatisfiable");
  assert.equal(parseRange("bytes=-0", 1000), "unsatisfiable");
  // starts past Number.MAX_SAFE_INTEGER are past the end too
  assert.equal(parseRange("bytes=99999999999999999999-", 1000), "unsatisfiable");
  assert.equal(
    parseRange("bytes=99999999999999999999-99999999999999999999", 1000),
    "unsatisfiable",
  );
  for (const ignored of [null, "bytes=5-1", "items=0-1", "bytes=0-1,5-6", "bytes=-", "bytes=a-b"]) {
    assert.equal(parseRange(ignored, 1000), null, String(ignored));
  }
});

Deno.test("noneMatch() compares weakly, in lists and with *", () => {
  const etag = '"abc"';
  assert.ok(noneMatch('"abc"', etag));
  assert.ok(noneMatch('W/"abc"', etag));
  assert.ok(noneMatch('"x", "abc"', etag));
  assert.ok(noneMatch("*", etag));
  assert.ok(!noneMatch('"abcd"', etag));
  assert.ok(!noneMatch(null, etag));
});

Deno.test("rangeStillValid() needs If-Range, when given, to be the current ETag", () => {
  assert.ok(rangeStillValid(null, '"abc"'));
  assert.ok(rangeStillValid('"abc"', '"abc"'));
  assert.ok(!rangeStillValid('W/"abc"', '"abc"'));
  assert.ok(!rangeStillValid("Wed, 21 Oct 2015 07:28:00 GMT", '"abc"'));
});
