// Request/response over anywidget custom messages, matched by id (quak-style).
// Python answers every request with {id, ...} or {kind: "error", id, error}.

// Requests go out just after the next frame: the work they start in the kernel (a retrain per
// label) then does not compete for the CPU with painting what the key changed. A hidden page
// paints no frames, hence the timer.
function afterNextFrame(send) {
  let sent = false;
  const once = () => {
    if (!sent) send();
    sent = true;
  };
  requestAnimationFrame(() => setTimeout(once, 0));
  setTimeout(once, 100);
}

/**
 * `onOther(msg)` receives the replies to other views of the same widget.
 * @param {import("@anywidget/types").AnyModel} model
 * @param {{ onOther?: (msg: any) => void }} [options]
 */
export function createRpc(model, { onOther = (_msg) => {} } = {}) {
  const pending = new Map();
  const prefix = Math.random().toString(36).slice(2, 10);
  let counter = 0;

  function onMessage(msg, buffers) {
    if (!msg || msg.id == null) return;
    if (!pending.has(msg.id)) {
      if (!String(msg.id).startsWith(`${prefix}-`)) onOther(msg); // another view's reply
      return;
    }
    const { resolve, reject } = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.kind === "error") {
      reject(Object.assign(new Error(msg.error), { request: msg.request }));
    } else {
      resolve({ msg, buffers: buffers ?? [] });
    }
  }
  model.on("msg:custom", onMessage);

  return {
    /** Send {kind, ...} and resolve with {msg, buffers} when Python answers. */
    request(content) {
      const id = `${prefix}-${++counter}`;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        afterNextFrame(() => model.send({ ...content, id }));
      });
    },
    get inFlight() {
      return pending.size;
    },
    dispose() {
      model.off("msg:custom", onMessage);
      pending.clear();
    },
  };
}
