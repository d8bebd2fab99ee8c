import assert from "node:assert/strict";
import { OperatorDisconnects } from "./operator_disconnects.ts";

const earlier = "2026-12-06T10:00:00.000Z";
const later = "2026-12-06T10:00:00.001Z";

Deno.test("OperatorDisconnects: a disconnect ends a socket the store let in before it, not one let in after it", () => {
  const letInBefore = new OperatorDisconnects();
  assert.equal(letInBefore.admitted(earlier), false);
  assert.equal(letInBefore.heard(later), true);

  const letInAfter = new OperatorDisconnects();
  assert.equal(letInAfter.admitted(later), false);
  assert.equal(letInAfter.heard(later), false, "the disconnect the read showed");
  assert.equal(letInAfter.heard(earlier), false, "an older one, late");

  const neverDisconnected = new OperatorDisconnects();
  assert.equal(neverDisconnected.admitted(null), false);
  assert.equal(neverDisconnected.heard(earlier), true);
});

Deno.test("OperatorDisconnects: a disconnect heard while the first read is under way is judged once it answers", () => {
  const readBefore = new OperatorDisconnects();
  assert.equal(readBefore.heard(later), false, "not yet known");
  assert.equal(readBefore.admitted(earlier), true);

  const readAfter = new OperatorDisconnects();
  assert.equal(readAfter.heard(later), false);
  assert.equal(readAfter.heard(earlier), false);
  assert.equal(readAfter.admitted(later), false);
  assert.equal(readAfter.heard(later), false, "told again");
});

Deno.test("OperatorDisconnects: a disconnect without its time, from an older instance, is believed", () => {
  const disconnects = new OperatorDisconnects();
  assert.equal(disconnects.heard(undefined), true);
  assert.equal(disconnects.admitted(later), false);
  assert.equal(disconnects.heard(undefined), true);
});
