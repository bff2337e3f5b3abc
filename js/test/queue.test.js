// The view's clip queue: pages, cursor, prefetch count, undo and feed changes (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Queue } from "../src/queue.js";

const items = (...ids) => ids.map((clip_id) => ({ clip_id, decision: null, state: "new" }));

function queueOf(n, batchSize = 3) {
  const released = [];
  const q = new Queue({ batchSize, release: (item) => released.push(item.clip_id) });
  q.add(items(...Array.from({ length: n }, (_, i) => `c${i}`)));
  return { q, released };
}

test("labelling moves on at once, page by page, from the loaded clips", () => {
  const { q } = queueOf(7);
  assert.deepEqual(q.pageIds, ["c0", "c1", "c2"]);
  assert.equal(q.ahead, 7);
  assert.equal(q.decide("accept").clip_id, "c0");
  assert.equal(q.current.clip_id, "c1");
  q.decide("reject");
  q.decide("skip");
  assert.deepEqual(q.pageIds, ["c3", "c4", "c5"]); // the next batch, no waiting
  assert.equal(q.current.clip_id, "c3");
  assert.equal(q.ahead, 4);
});

test("next stays on a page with open clips; prev goes back to older pages", () => {
  const { q } = queueOf(6);
  q.move(+1);
  q.move(+1);
  q.move(+1); // past the end with open clips: wrap to the first open one
  assert.equal(q.current.clip_id, "c0");
  q.decide("accept");
  q.decide("accept");
  q.decide("accept");
  assert.equal(q.current.clip_id, "c3");
  q.move(-1);
  assert.equal(q.current.clip_id, "c2");
  q.decide("reject"); // relabel on an older page, then back to the newest page
  assert.equal(q.current.clip_id, "c3");
});

test("running out waits past the end; new clips open the next page", () => {
  const { q } = queueOf(2);
  q.decide("accept");
  q.decide("accept");
  assert.equal(q.current, null);
  q.add(items("c1", "n1")); // c1 is a duplicate and is released
  assert.deepEqual(q.pageIds, ["n1"]);
  assert.equal(q.current.clip_id, "n1");
});

test("undo restores a clip, also one this view never had", () => {
  const { q } = queueOf(4);
  q.decide("accept");
  q.restore("c0");
  assert.equal(q.current.clip_id, "c0");
  assert.equal(q.current.decision, null);
  const [old] = items("older");
  assert.equal(q.restore("older", old), old);
  assert.deepEqual(q.pageIds, ["older", "c0", "c1", "c2"]);
});

test("a feed change drops undecided clips and releases them", () => {
  const { q, released } = queueOf(6);
  q.decide("accept");
  q.discardUndecided();
  assert.deepEqual(released.sort(), ["c1", "c2", "c3", "c4", "c5"]);
  assert.deepEqual(q.pageIds, ["c0"]);
  assert.equal(q.current, null);
  q.add(items("r0", "r1"));
  assert.deepEqual(q.pageIds, ["r0", "r1"]);
  q.clear();
  assert.deepEqual(released.sort(), ["c0", "c1", "c2", "c3", "c4", "c5", "r0", "r1"]);
});

test("a clip decided in another view shows decided here; the current one is passed", () => {
  const { q } = queueOf(6);
  assert.equal(q.decidedElsewhere("c1", "reject").clip_id, "c1"); // not current: cursor stays
  assert.equal(q.current.clip_id, "c0");
  assert.equal(q.items.get("c1").state, "saved");
  assert.equal(q.decidedElsewhere("c1", "reject"), null); // nothing new
  q.decidedElsewhere("c0", "accept"); // the current one: move on, skipping decided c1
  assert.equal(q.current.clip_id, "c2");
  assert.equal(q.decidedElsewhere("c4", "accept"), null); // not on a page: Python drops it
  q.decidedElsewhere("c1", null); // undone there: open again here
  assert.equal(q.items.get("c1").decision, null);
  assert.equal(q.items.get("c1").state, "new");
  assert.equal(q.decidedElsewhere("nope", "accept"), null);
});

test("another view's decision leaves a clip alone while this view's own event is pending", () => {
  const { q } = queueOf(6);
  const item = q.decide("accept"); // c0, sent to Python, not acknowledged yet
  item.state = "pending";
  assert.equal(q.decidedElsewhere("c0", "reject"), null); // older than ours: ours comes later
  assert.equal(item.decision, "accept");
  item.state = "error"; // ours failed; the other view's equal decision is the saved one
  q.items.get("c0").decision = "reject";
  assert.equal(q.decidedElsewhere("c0", "reject").state, "saved");
});

test("a clip undone in another view becomes current when this view has none", () => {
  const { q } = queueOf(3);
  for (let i = 0; i < 3; i++) q.decide("accept");
  assert.equal(q.current, null); // all decided, nothing upcoming: waiting
  q.decidedElsewhere("c1", null);
  assert.equal(q.current.clip_id, "c1");
  assert.equal(q.current.decision, null);
});
