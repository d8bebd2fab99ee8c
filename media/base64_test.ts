import assert from "node:assert/strict";
import { decodeBase64, decodedLength } from "./base64.ts";
import { MediaError } from "./errors.ts";

const bytes = new Uint8Array([0, 1, 2, 250, 251, 252, 253]);
const text = bytes.toBase64();

function refusedWith(code: string) {
  return (error: unknown) => error instanceof MediaError && error.code === code;
}

Deno.test("decodeBase64() decodes padded and unpadded base64, with line breaks", () => {
  assert.deepEqual(decodeBase64(text, 100), bytes);
  assert.deepEqual(decodeBase64(text.replace(/=+$/, ""), 100), bytes);
  assert.deepEqual(decodeBase64(`${text.slice(0, 4)}\r\n${text.slice(4)}`, 100), bytes);
});

Deno.test("decodeBase64() strips a data: URL prefix whatever type it claims", () => {
  assert.deepEqual(decodeBase64(`data:image/png;base64,${text}`, 100), bytes);
  assert.deepEqual(decodeBase64(`data:;base64,${text}`, 100), bytes);
  assert.deepEqual(decodeBase64(`data:video/mp4;codecs=x;BASE64,${text}`, 100), bytes);
});

Deno.test("decodeBase64() takes the data: scheme in any case, as URL schemes are", () => {
  for (const scheme of ["DATA", "Data", "dAtA"]) {
    assert.deepEqual(decodeBase64(`${scheme}:image/png;base64,${text}`, 100), bytes, scheme);
  }
  assert.throws(() => decodeBase64(`DATA:image/png,${text}`, 100), refusedWith("invalid_base64"));
});

Deno.test("decodeBase64() refuses anything that is not base64 instead of skipping it", () => {
  for (const broken of ["a$bc", "abcde", "ab=c", `data:image/png,${text}`, "data:image/png"]) {
    assert.throws(() => decodeBase64(broken, 100), refusedWith("invalid_base64"), broken);
  }
});

Deno.test("decodeBase64() takes exactly maxBytes and refuses one more", () => {
  assert.equal(decodeBase64(new Uint8Array(300).toBase64(), 300).length, 300);
  assert.throws(() => decodeBase64(new Uint8Array(301).toBase64(), 300), refusedWith("too_large"));
  // whitespace makes the text longer than the file: the decoded size decides
  const spaced = new Uint8Array(300).toBase64().replace(/(.{4})/g, "$1 ");
  assert.equal(decodeBase64(spaced, 300).length, 300);
});

Deno.test("decodeBase64() refuses a text too long for the limit before decoding it", () => {
  // not base64 at all, yet too_large: the length alone decides
  assert.throws(() => decodeBase64("$".repeat(1000), 100), refusedWith("too_large"));
});

Deno.test("decodedLength() is the exact size of unbroken base64, padded or not", () => {
  for (let size = 0; size < 10; size++) {
    const encoded = new Uint8Array(size).toBase64();
    assert.equal(decodedLength(encoded), size);
    assert.equal(decodedLength(encoded.replace(/=+$/, "")), size);
  }
});
