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
  assert.equal(q.decide("positive").clip_id, "c0");
  assert.equal(q.current.clip_id, "c1");
  q.decide("negative");
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
  q.decide("positive");
  q.decide("positive");
  q.decide("positive");
  assert.equal(q.current.clip_id, "c3");
  q.move(-1);
  assert.equal(q.current.clip_id, "c2");
  q.decide("negative"); // relabel on an older page, then back to the newest page
  assert.equal(q.current.clip_id, "c3");
});

test("running out waits past the end; new clips open the next page", () => {
  const { q } = queueOf(2);
  q.decide("positive");
  q.decide("positive");
  assert.equal(q.current, null);
  q.add(items("c1", "n1")); // c1 is a duplicate and is released
  assert.deepEqual(q.pageIds, ["n1"]);
  assert.equal(q.current.clip_id, "n1");
});

test("undo restores a clip, also one this view never had", () => {
  const { q } = queueOf(4);
  q.decide("positive");
  q.restore("c0");
  assert.equal(q.current.clip_id, "c0");
  assert.equal(q.current.decision, null);
  const [old] = items("older");
  assert.equal(q.restore("older", old), old);
  assert.deepEqual(q.pageIds, ["older", "c0", "c1", "c2"]);
});

test("a feed change drops undecided clips and releases them", () => {
  const { q, released } = queueOf(6);
  q.decide("positive");
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
  assert.equal(q.decidedElsewhere("c1", "negative").clip_id, "c1"); // not current: cursor stays
  assert.equal(q.current.clip_id, "c0");
  assert.equal(q.items.get("c1").state, "saved");
  assert.equal(q.decidedElsewhere("c1", "negative"), null); // nothing new
  q.decidedElsewhere("c0", "positive"); // the current one: move on, skipping decided c1
  assert.equal(q.current.clip_id, "c2");
  assert.equal(q.decidedElsewhere("c4", "positive"), null); // not on a page: Python drops it
  q.decidedElsewhere("c1", null); // undone there: open again here
  assert.equal(q.items.get("c1").decision, null);
  assert.equal(q.items.get("c1").state, "new");
  assert.equal(q.decidedElsewhere("nope", "positive"), null);
});

test("another view's decision leaves a clip alone while this view's own event is pending", () => {
  const { q } = queueOf(6);
  const item = q.decide("positive"); // c0, sent to Python, not acknowledged yet
  item.state = "pending";
  assert.equal(q.decidedElsewhere("c0", "negative"), null); // older than ours: ours comes later
  assert.equal(item.decision, "positive");
  item.state = "error"; // ours failed; the other view's equal decision is the saved one
  q.items.get("c0").decision = "negative";
  assert.equal(q.decidedElsewhere("c0", "negative").state, "saved");
});

test("a clip undone in another view becomes current when this view has none", () => {
  const { q } = queueOf(3);
  for (let i = 0; i < 3; i++) q.decide("positive");
  assert.equal(q.current, null); // all decided, nothing upcoming: waiting
  q.decidedElsewhere("c1", null);
  assert.equal(q.current.clip_id, "c1");
  assert.equal(q.current.decision, null);
});

test("a decided clip served again (review) replaces its old card and can be labelled again", () => {
  const { q, released } = queueOf(4, 2);
  for (const id of ["c0", "c1"]) {
    q.decide("positive");
    q.items.get(id).state = "saved";
  }
  const c2 = q.decide("negative"); // on the second page, not acknowledged yet
  assert.equal(q.admits("c0"), true); // decided and saved: may come back
  assert.equal(q.admits("c2"), false); // its event is pending
  assert.equal(q.admits("c3"), false); // held, undecided
  assert.equal(q.admits("new"), true);
  q.discardUndecided(); // a feed change (to review)
  assert.deepEqual(released, ["c3"]);
  const again = items("c0", "c2");
  q.add(again);
  assert.equal(q.items.get("c0"), again[0]); // the new item, undecided
  assert.equal(q.items.get("c2"), c2); // pending: kept, the copy released
  assert.deepEqual(released, ["c3", "c0", "c2"]);
  assert.deepEqual(q.pages, [["c1"], ["c2"], ["c0"]]);
  assert.equal(q.current.clip_id, "c0");
  q.decide("negative");
  assert.equal(q.items.get("c0").decision, "negative");
});

test("a page emptied by clips served again is not left to land on", () => {
  const { q } = queueOf(2, 1);
  q.decide("positive");
  q.items.get("c0").state = "saved";
  q.decide("positive");
  q.items.get("c1").state = "saved";
  assert.deepEqual(q.pages, [["c0"], ["c1"]]);
  q.add(items("c0"));
  assert.deepEqual(q.pages, [["c1"], ["c0"]]);
  assert.equal(q.current.clip_id, "c0");
  q.move(-1);
  assert.equal(q.current.clip_id, "c1");
});

test("a page labelled with one key: every undecided clip decided, the next page opened", () => {
  const { q } = queueOf(7);
  q.decide("negative"); // c0
  assert.deepEqual(q.undecidedOnPage, ["c1", "c2"]);
  const items = q.decideMany(q.undecidedOnPage, "positive");
  assert.deepEqual(items.map((i) => i.clip_id), ["c1", "c2"]);
  assert.equal(q.items.get("c0").decision, "negative"); // decided before: left alone
  assert.deepEqual(q.pageIds, ["c3", "c4", "c5"]);
  assert.equal(q.current.clip_id, "c3");
});

test("a selection without the current clip leaves the cursor where it is", () => {
  const { q } = queueOf(3);
  q.decideMany(["c1", "c2"], "negative");
  assert.equal(q.current.clip_id, "c0");
  q.decideMany(["c0", "nope"], "positive"); // the current one too: move on (none left: wait)
  assert.equal(q.current, null);
});

test("an action of several clips undone whole: all open again, the first current", () => {
  const { q } = queueOf(7);
  q.decideMany(q.undecidedOnPage, "positive"); // c0..c2
  q.decide("negative"); // c3
  const [older] = items("older");
  const restored = q.restoreMany(["c0", "c1", "older"], [older]);
  assert.deepEqual(restored.map((i) => i.clip_id), ["c0", "c1", "older"]);
  assert.ok(restored.every((i) => i.decision === null && i.state === "new"));
  assert.equal(q.current.clip_id, "c0");
  assert.deepEqual(q.pageIds, ["c0", "c1", "older", "c2"]);
  assert.equal(q.items.get("c2").decision, "positive"); // not part of that action
  assert.deepEqual(q.restoreMany([]), []);
});

test("nextPageIds: the clips the next page will show, so the view can lay it out ahead", () => {
  const { q } = queueOf(7);
  assert.deepEqual(q.nextPageIds, ["c3", "c4", "c5"]);
  for (const id of q.undecidedOnPage) q.decideMany([id], "negative");
  assert.deepEqual(q.pageIds, ["c3", "c4", "c5"]); // what was announced
  assert.deepEqual(q.nextPageIds, ["c6"]);
  q.move(-1); // back on an older page: a label there returns to the newest page first
  q.goTo("c0");
  assert.deepEqual(q.nextPageIds, []);
});
