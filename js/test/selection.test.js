// Selecting cards: ranges from an anchor, toggles, page order (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Selection } from "../src/selection.js";

const page = ["c0", "c1", "c2", "c3", "c4"];

test("a range runs from the anchor (the clip current when it started) to the clip", () => {
  const s = new Selection();
  s.extendTo(page, "c3", "c1");
  assert.deepEqual(s.inOrder(page), ["c1", "c2", "c3"]);
  s.extendTo(page, "c0", "c3"); // the anchor stays c1: the range turns round
  assert.deepEqual(s.inOrder(page), ["c0", "c1"]);
  assert.equal(s.anchor, "c1");
});

test("toggles add and remove single clips and move the anchor", () => {
  const s = new Selection();
  s.toggle("c4");
  s.toggle("c1");
  assert.deepEqual(s.inOrder(page), ["c1", "c4"]);
  s.toggle("c4");
  assert.deepEqual(s.inOrder(page), ["c1"]);
  s.extendTo(page, "c2", "c0"); // a range from the last clip clicked, c4
  assert.deepEqual(s.inOrder(page), ["c2", "c3", "c4"]);
  s.clear();
  assert.equal(s.size, 0);
  assert.equal(s.anchor, null);
});

test("an anchor not on this page starts the range afresh", () => {
  const s = new Selection();
  s.toggle("gone");
  s.extendTo(page, "c2", "c0");
  assert.deepEqual(s.inOrder(page), ["c2"]);
  s.extendTo(page, "nope", "c0"); // not on the page: nothing changes
  assert.deepEqual(s.inOrder(page), ["c2"]);
});
