// Frame stepping in the large player (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";
import { stepTime } from "../src/player.js";

const times = [0, 0.04, 0.08, 0.12]; // presentation times of the frames

test("a step goes to the next or previous frame's time, from any time inside a frame", () => {
  assert.equal(stepTime(times, 0, +1), 0.04);
  assert.equal(stepTime(times, 0.0401, +1), 0.08); // just after a frame's start: that frame
  assert.equal(stepTime(times, 0.05, -1), 0);
  assert.equal(stepTime(times, 0.08, -1), 0.04);
  assert.equal(stepTime(times, 0.0799999, +1), 0.12); // within a millisecond of a frame: that frame
});

test("steps stop at the first and the last frame", () => {
  assert.equal(stepTime(times, 0, -1), 0);
  assert.equal(stepTime(times, 0.12, +1), 0.12);
  assert.equal(stepTime(times, 0.5, +1), 0.12);
  assert.equal(stepTime([], 0.3, +1), 0.3);
});
