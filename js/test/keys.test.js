// Which action a key press means (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";
import { actionFor } from "../src/keys.js";

const shortcuts = { positive: ["a"], positive_page: ["A"], negative: ["x"], next: ["ArrowRight", "j"], help: ["?"] };
const key = (k, shiftKey = false) => /** @type {KeyboardEvent} */ ({ key: k, shiftKey });

test("Shift+A is the page action; a, and A typed with Caps Lock, label one clip", () => {
  assert.equal(actionFor(key("a"), shortcuts), "positive");
  assert.equal(actionFor(key("A", true), shortcuts), "positive_page");
  assert.equal(actionFor(key("A", false), shortcuts), "positive"); // Caps Lock, no Shift
  assert.equal(actionFor(key("X", true), shortcuts), "negative"); // no page key set: the clip
  assert.equal(actionFor(key("J", true), shortcuts), "next");
  assert.equal(actionFor(key("ArrowRight", true), shortcuts), "next");
  assert.equal(actionFor(key("?", true), shortcuts), "help");
  assert.equal(actionFor(key("q"), shortcuts), null);
});
