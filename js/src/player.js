// The real clip, played in its card: Python encodes it (H.264 MP4) on request; the bytes
// become a Blob URL kept with the item (revoked when the item is released).
import { h } from "./dom.js";

/**
 * @param {{ rpc: any, cardOf: (item: any) => HTMLElement, showError: (error: unknown) => void }} deps
 */
export function createPlayer({ rpc, cardOf, showError }) {
  function start(item) {
    const card = cardOf(item);
    const media = /** @type {HTMLElement} */ (card.querySelector(".va-media"));
    media.querySelector("video")?.remove();
    const video = /** @type {HTMLVideoElement} */ (
      h("video", { src: item.videoUrl, autoplay: true, muted: true, loop: true, playsinline: true, controls: true, "data-testid": "clip-video", "aria-label": `Video of clip ${item.clip_id}` })
    );
    video.muted = true;
    media.append(video);
    card.dataset.playing = "true";
    video.play?.().catch(() => {});
  }

  /** Stop the clip's video, if it plays, and show its frames again. */
  function stop(item) {
    const card = item?.card;
    if (!card) return;
    const video = card.querySelector("video");
    video?.pause();
    video?.remove();
    card.dataset.playing = "false";
  }

  /** Play the clip (fetching it the first time), or stop it if it plays. */
  function toggle(item) {
    if (!item) return;
    if (item.card?.dataset.playing === "true") return stop(item);
    if (item.videoUrl) return start(item);
    if (item.card) item.card.dataset.playing = "loading";
    rpc
      .request({ kind: "play", clip_id: item.clip_id })
      .then(({ msg, buffers }) => {
        if (!item.urls.length && !item.frames.length) return; // released meanwhile
        item.videoUrl = URL.createObjectURL(new Blob([buffers[0]], { type: msg.mime }));
        start(item);
      })
      .catch((error) => {
        if (item.card) item.card.dataset.playing = "false";
        showError(error);
      });
  }

  return { toggle, stop };
}
