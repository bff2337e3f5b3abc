// Request/response over the widget's custom messages (node --test): a fake model stands in for
// anywidget's (on/off/send), the frame clock for the browser's.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createRpc } from "../src/rpc.js";

globalThis.requestAnimationFrame ??= (callback) => setTimeout(callback, 16);

function fakeModel() {
  const listeners = new Set();
  const sent = [];
  return {
    sent,
    on: (name, callback) => name === "msg:custom" && listeners.add(callback),
    off: (name, callback) => listeners.delete(callback),
    send: (content) => sent.push(content),
    reply: (msg, buffers) => listeners.forEach((callback) => callback(msg, buffers)),
    get listening() {
      return listeners.size;
    },
  };
}

const tick = (ms = 120) => new Promise((resolve) => setTimeout(resolve, ms));

test("a request leaves after the next frame with a fresh id; its reply resolves it", async () => {
  const model = fakeModel();
  const rpc = createRpc(model);
  const first = rpc.request({ kind: "more", n: 4 });
  const second = rpc.request({ kind: "status" });
  assert.deepEqual(model.sent, []); // not before the frame that shows what the key changed
  assert.equal(rpc.inFlight, 2);
  await tick();
  assert.equal(model.sent.length, 2);
  const [a, b] = model.sent;
  assert.equal(a.kind, "more");
  assert.equal(a.n, 4);
  assert.notEqual(a.id, b.id);
  const frames = [new DataView(new ArrayBuffer(2))];
  model.reply({ id: b.id, kind: "ack" }, undefined);
  model.reply({ id: a.id, kind: "clips", clips: [] }, frames);
  assert.deepEqual(await first, { msg: { id: a.id, kind: "clips", clips: [] }, buffers: frames });
  assert.deepEqual(await second, { msg: { id: b.id, kind: "ack" }, buffers: [] });
  assert.equal(rpc.inFlight, 0);
  rpc.dispose();
});

test("an error reply rejects with Python's message and the request's kind", async () => {
  const model = fakeModel();
  const rpc = createRpc(model);
  const asked = rpc.request({ kind: "label", clip_id: "c", label: true });
  await tick();
  model.reply({ id: model.sent[0].id, kind: "error", request: "label", error: "ValueError: no" });
  await assert.rejects(asked, (error) => error.message === "ValueError: no" && error.request === "label");
  rpc.dispose();
});

test("replies to other views go to onOther; stray ones of this view are ignored", async () => {
  const model = fakeModel();
  const others = [];
  const rpc = createRpc(model, { onOther: (msg) => others.push(msg) });
  const asked = rpc.request({ kind: "skip", clip_id: "c" });
  await tick();
  const id = model.sent[0].id;
  model.reply({ id: "another-view-1", kind: "ack", clip_id: "x", label: true });
  model.reply({ id: `${id.split("-")[0]}-999`, kind: "ack" }); // this view's prefix, no request
  model.reply({ kind: "ack" }); // no id: not a reply
  model.reply(null);
  assert.deepEqual(others, [{ id: "another-view-1", kind: "ack", clip_id: "x", label: true }]);
  model.reply({ id, kind: "ack", clip_id: "c", label: null });
  assert.equal((await asked).msg.clip_id, "c");
  model.reply({ id, kind: "ack" }); // a second reply to an answered id of this view: ignored
  assert.equal(others.length, 1);
  rpc.dispose();
});

test("dispose stops listening", () => {
  const model = fakeModel();
  const rpc = createRpc(model);
  assert.equal(model.listening, 1);
  rpc.dispose();
  assert.equal(model.listening, 0);
});
