// Clips replies to items: frames split by n_frames, Blob URLs made and revoked (node --test).
// Node has Blob and object URLs; <img> is the browser's, so a minimal one stands in here.
import assert from "node:assert/strict";
import { resolveObjectURL } from "node:buffer";
import { test } from "node:test";
import { makeItems, releaseItem } from "../src/clips.js";

class TestImage {
  constructor() {
    this.dataset = {};
    this.attributes = {};
    this.decoded = false;
  }
  setAttribute(name, value) {
    this.attributes[name] = value;
  }
  decode() {
    this.decoded = true;
    return Promise.resolve();
  }
}
globalThis.Image = TestImage;

const meta = (clip_id, n_frames) => ({ clip_id, video: "v.mp4", start_seconds: 0, end_seconds: 2, score: 0.5, feed: "random", n_frames, previous: null });
const frame = (byte) => new DataView(new Uint8Array([0xff, 0xd8, byte]).buffer);
const bytesOf = async (url) => [...new Uint8Array(await resolveObjectURL(url).arrayBuffer())];

test("each clip owns the frames after those of the clips before it", async () => {
  const buffers = [frame(1), frame(2), frame(3), frame(4), frame(5)];
  const items = makeItems([meta("a", 2), meta("b", 3)], buffers);
  assert.deepEqual(items.map((i) => [i.clip_id, i.frames.length, i.urls.length]), [["a", 2, 2], ["b", 3, 3]]);
  assert.deepEqual(await bytesOf(items[1].urls[0]), [0xff, 0xd8, 3]);
  assert.deepEqual(await bytesOf(items[0].urls[1]), [0xff, 0xd8, 2]);
  const img = items[1].frames[2];
  assert.equal(img.src, items[1].urls[2]);
  assert.equal(img.dataset.frame, "2");
  assert.equal(img.attributes.elementtiming, "va-preview");
  await items[1].ready;
  assert.ok(items[1].frames.every((i) => i.decoded)); // decoded before the clip is shown
  assert.deepEqual(
    [items[0].decision, items[0].state, items[0].frame, items[0].seq, items[0].card, items[0].feed],
    [null, "new", 0, 0, null, "random"],
  );
});

test("unwanted clips get no object URL, and do not shift the others' frames", async () => {
  const items = makeItems([meta("a", 1), meta("b", 2), meta("c", 1)], [frame(1), frame(2), frame(3), frame(4)], (id) => id !== "b");
  assert.deepEqual(items.map((i) => i.clip_id), ["a", "c"]);
  assert.deepEqual(await bytesOf(items[1].urls[0]), [0xff, 0xd8, 4]);
});

test("releasing an item revokes its URLs, the video's too, and removes its card", () => {
  const [item] = makeItems([meta("a", 2)], [frame(1), frame(2)]);
  const urls = [...item.urls];
  item.videoUrl = URL.createObjectURL(new Blob([new Uint8Array([0])]));
  const video = item.videoUrl;
  let removed = false;
  item.card = { querySelector: () => null, remove: () => (removed = true) };
  releaseItem(item);
  assert.ok(urls.every((url) => resolveObjectURL(url) === undefined));
  assert.equal(resolveObjectURL(video), undefined);
  assert.deepEqual([item.urls, item.videoUrl, removed], [[], null, true]);
  releaseItem(null); // nothing to release
});
