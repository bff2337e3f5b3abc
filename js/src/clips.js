// Turn a "clips" reply (metadata + JPEG frames as DataViews) into items with Blob URLs and
// pre-decoded <img> elements, and free them again.

/**
 * Items for msg.clips; clip i owns the n_frames buffers after those of clips 0..i-1.
 * Only clips for which wanted(clip_id) holds become items (no Blob URL for the others).
 * @param {any[]} clips the clips' metadata
 * @param {DataView<ArrayBuffer>[]} buffers their JPEG frames
 * @param {(clipId: string) => boolean} [wanted]
 */
export function makeItems(clips, buffers, wanted = (_clipId) => true) {
  let offset = 0;
  const items = [];
  for (const meta of clips) {
    const views = buffers.slice(offset, offset + meta.n_frames);
    offset += meta.n_frames;
    if (!wanted(meta.clip_id)) continue;
    const urls = views.map((view) => URL.createObjectURL(new Blob([view], { type: "image/jpeg" })));
    const frames = urls.map((url, i) => {
      const img = new Image();
      img.alt = "";
      img.draggable = false;
      img.dataset.frame = String(i);
      img.setAttribute("elementtiming", "va-preview"); // Element Timing: when it is first painted
      img.src = url;
      return img;
    });
    // Decode before the clip is shown, so that showing it (and flipping frames) is instant.
    const ready = Promise.all(frames.map((img) => img.decode().catch(() => {})));
    items.push({
      ...meta,
      urls,
      frames,
      ready,
      frame: 0,
      lastFlip: 0,
      decision: null, // "positive" | "negative" | "skip"
      state: "new", // "new" | "pending" | "saved" | "error"
      seq: 0, // increments with each event sent for this clip
      videoUrl: null,
      card: null,
    });
  }
  return items;
}

export function releaseItem(item) {
  if (!item) return;
  for (const url of item.urls) URL.revokeObjectURL(url);
  if (item.videoUrl) URL.revokeObjectURL(item.videoUrl);
  item.card?.querySelector("video")?.pause();
  item.card?.remove();
  item.urls = [];
  item.videoUrl = null;
}
