// The focused element inside shadow roots (node --test, no DOM: plain objects stand in).
import assert from "node:assert/strict";
import { test } from "node:test";
import { deepActiveElement } from "../src/dom.js";

test("deepActiveElement descends through open shadow roots", () => {
  const input = { shadowRoot: null, name: "query box" };
  const inner = { shadowRoot: { activeElement: input } };
  const host = { shadowRoot: { activeElement: inner } };
  assert.equal(deepActiveElement({ activeElement: host }), input);
});

test("deepActiveElement stops at a host whose shadow root has no focus", () => {
  const host = { shadowRoot: { activeElement: null } };
  assert.equal(deepActiveElement({ activeElement: host }), host);
  const plain = { shadowRoot: null };
  assert.equal(deepActiveElement({ activeElement: plain }), plain);
  assert.equal(deepActiveElement({ activeElement: null }), null);
});
