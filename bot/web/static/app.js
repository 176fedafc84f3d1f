// The Mini App "Pick colours" (bot/web/server.py): tap the photo to place a colour point, drag to move it, pick its
// colour from the suggestions or any colour; a 256 px preview follows each change; Send puts the full-size
// result in the chat. Plain JS, no build step. Every API call carries Telegram's initData, which the server
// validates; without initData (opened outside Telegram) nothing is asked of the server at all.
"use strict";

(function () {
  const tg = window.Telegram && window.Telegram.WebApp;
  const $ = (id) => document.getElementById(id);
  // Changes are discrete (a tap, a colour, a drag's end, Undo): a short wait gathers a burst of clicks into one
  // preview, and at most one preview is asked at a time (the latest state follows the one in flight).
  const PREVIEW_DEBOUNCE_MS = 60;
  const TAP_SLOP_PX = 8;

  let texts = {}, lang = "en", maxHints = 32, token = "";
  let hints = [];          // [{x, y, rgb: [r, g, b], suggestions: [[r, g, b]...]}] in full-resolution pixels
  let history = [];        // earlier states of `hints`, for Undo
  let selected = -1;
  let previewTimer = null, previewBusy = false, previewAgain = false, previewVersion = 0, previewUrl = null;
  let sending = false;
  const suggested = {};    // "x,y" -> the colours suggested there (kept across Undo)

  function applyTheme() {
    const root = document.documentElement;
    const params = (tg && tg.themeParams) || {};
    for (const [key, value] of Object.entries(params)) {
      root.style.setProperty("--tg-theme-" + key.replace(/_/g, "-"), value);
    }
    root.dataset.theme = (tg && tg.colorScheme) || "light";
  }

  function fail(message) {
    $("app").hidden = true;
    $("error").hidden = false;
    if (message) $("error-text").textContent = message;
  }

  function say(key, params) {
    let text = texts[key];
    if (text && typeof text === "object") {  // plural forms by CLDR category, as the bot's (Babel) are chosen
      const form = new Intl.PluralRules(lang).select(params.count);
      text = text[form] || text.other;
    }
    return String(text || "").replace(/\{(\w+)\}/g, (_, name) => String(params && params[name]));
  }

  async function api(path, body) {
    const response = await fetch(path, {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(Object.assign({initData: tg.initData, token: token}, body)),
    });
    if (!response.ok) {
      let answer = {};
      try { answer = await response.json(); } catch (e) { /* not JSON */ }
      const error = new Error(answer.error || "failed");
      error.status = response.status;
      error.userMessage = answer.message;
      throw error;
    }
    return response;
  }

  const hex = (rgb) => "#" + rgb.map((v) => v.toString(16).padStart(2, "0")).join("");
  const rgbOf = (value) => [1, 3, 5].map((i) => parseInt(value.slice(i, i + 2), 16));
  const snapshot = () => hints.map((h) => ({x: h.x, y: h.y, rgb: h.rgb.slice(), suggestions: h.suggestions,
                                            picked: h.picked}));

  function remember() {
    history.push(snapshot());
    if (history.length > 100) history.shift();
  }

  function changed() {
    render();
    schedulePreview();
  }

  function render() {
    const photo = $("photo");
    const layer = $("points");
    layer.textContent = "";
    hints.forEach((h, i) => {
      const dot = document.createElement("div");
      dot.className = "point" + (i === selected ? " selected" : "");
      dot.style.left = (100 * h.x / photo.naturalWidth) + "%";
      dot.style.top = (100 * h.y / photo.naturalHeight) + "%";
      dot.style.background = hex(h.rgb);
      dot.dataset.index = String(i);
      dot.dataset.x = String(h.x);  // where it lands on the full-size photo, and its colour: what Send sends
      dot.dataset.y = String(h.y);
      dot.dataset.rgb = h.rgb.join(",");
      layer.appendChild(dot);
    });
    $("count").textContent = say("points", {count: hints.length});
    $("undo").disabled = history.length === 0;
    $("reset").disabled = hints.length === 0;
    $("send").disabled = hints.length === 0 || sending;
    const picker = $("picker");
    picker.hidden = selected < 0;
    if (selected >= 0) {
      const h = hints[selected];
      $("colour").value = hex(h.rgb);
      const swatches = $("swatches");
      swatches.textContent = "";
      const offered = (h.suggestions && h.suggestions.length) ? h.suggestions : (suggested[h.x + "," + h.y] || []);
      offered.forEach((rgb) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "swatch";
        b.style.background = hex(rgb);
        b.title = hex(rgb);
        b.addEventListener("click", () => setColour(rgb));
        swatches.appendChild(b);
      });
    }
  }

  function setColour(rgb) {
    if (selected < 0) return;
    remember();
    hints[selected].rgb = rgb.slice();
    hints[selected].picked = true;
    changed();
  }

  function toPhoto(event) {
    const photo = $("photo");
    const box = photo.getBoundingClientRect();
    const fx = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 0.9999);
    const fy = Math.min(Math.max((event.clientY - box.top) / box.height, 0), 0.9999);
    return {x: Math.floor(fx * photo.naturalWidth), y: Math.floor(fy * photo.naturalHeight)};
  }

  async function addPoint(at) {
    if (hints.length >= maxHints) {
      $("status").textContent = say("too_many", {max: maxHints});
      return;
    }
    remember();
    const placed = hints.map((h) => [h.x, h.y, h.rgb[0], h.rgb[1], h.rgb[2]]);  // suggestions take them into account
    hints.push({x: at.x, y: at.y, rgb: [128, 128, 128], suggestions: []});
    selected = hints.length - 1;
    const point = hints[selected];
    render();  // shown at once; its colour comes with the suggestions
    const asked = stateKey();
    try {
      const answer = await (await api("/api/suggest", {x: at.x, y: at.y, hints: placed, preview: true})).json();
      point.suggestions = suggested[at.x + "," + at.y] = answer.colours || [];
      // The first suggestion, unless a colour was picked while the suggestions were on their way.
      if (point.suggestions.length && !point.picked) point.rgb = point.suggestions[0].slice();
      // The worker made the preview with that colour in the same job: shown at once if nothing changed meanwhile.
      if (answer.preview && stateKey() === asked.replace(/128,128,128$/, point.rgb.join(",")) && !previewBusy) {
        clearTimeout(previewTimer);
        render();
        return showPreview("data:image/jpeg;base64," + answer.preview, hints.length);
      }
    } catch (error) {
      if (error.status === 401 || error.status === 403 || error.status === 410) return fail(error.userMessage);
    }
    changed();
  }

  function setupStage() {
    const stage = $("stage");
    let drag = null;
    stage.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      const target = event.target.closest(".point");
      drag = {index: target ? Number(target.dataset.index) : -1, x: event.clientX, y: event.clientY, moved: false};
      if (drag.index >= 0) {
        selected = drag.index;
        render();
      }
      stage.setPointerCapture(event.pointerId);
    });
    stage.addEventListener("pointermove", (event) => {
      if (!drag || drag.index < 0) return;
      if (!drag.moved && Math.hypot(event.clientX - drag.x, event.clientY - drag.y) < TAP_SLOP_PX) return;
      if (!drag.moved) { remember(); drag.moved = true; }
      const at = toPhoto(event);
      hints[drag.index].x = at.x;
      hints[drag.index].y = at.y;
      render();
    });
    stage.addEventListener("pointerup", (event) => {
      if (!drag) return;
      const was = drag;
      drag = null;
      if (was.index >= 0) {
        if (was.moved) changed();
        return;
      }
      if (Math.hypot(event.clientX - was.x, event.clientY - was.y) < TAP_SLOP_PX) addPoint(toPhoto(event));
    });
    stage.addEventListener("pointercancel", () => { drag = null; });
  }

  function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(preview, PREVIEW_DEBOUNCE_MS);
  }

  // The points as a string (position and colour of each, in order): "has anything changed since".
  const stateKey = () => hints.map((h) => [h.x, h.y, h.rgb.join(",")].join(",")).join(";");

  function showPreview(src, count) {
    const img = $("preview");
    img.src = src;
    previewVersion += 1;
    img.dataset.version = String(previewVersion);
    img.dataset.hints = String(count);
  }

  async function preview() {
    if (previewBusy) { previewAgain = true; return; }  // one at a time: the latest state follows this one
    previewBusy = true;
    $("busy").hidden = false;
    try {
      const asked = hints.map((h) => [h.x, h.y, h.rgb[0], h.rgb[1], h.rgb[2]]);
      const blob = await (await api("/api/preview", {hints: asked})).blob();
      if (previewUrl) URL.revokeObjectURL(previewUrl);
      previewUrl = URL.createObjectURL(blob);
      showPreview(previewUrl, asked.length);
    } catch (error) {
      if (error.status === 401 || error.status === 403 || error.status === 410) return fail(error.userMessage);
      $("status").textContent = error.userMessage || say("error.failed");
    } finally {
      previewBusy = false;
      $("busy").hidden = true;
    }
    if (previewAgain) { previewAgain = false; preview(); }
  }

  function nonce() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function send() {
    if (sending || !hints.length) return;
    sending = true;
    render();
    const once = nonce();  // the same Send retried is one job (the server keys the job on it)
    const body = {hints: hints.map((h) => [h.x, h.y, h.rgb[0], h.rgb[1], h.rgb[2]]), nonce: once};
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const answer = await (await api("/api/send", body)).json();
        $("status").textContent = answer.message || say("sent");
        $("app").dataset.sent = "1";
        if (tg && tg.HapticFeedback) tg.HapticFeedback.notificationOccurred("success");
        setTimeout(() => tg.close(), 1500);
        return;
      } catch (error) {
        if (error.status) {  // the server answered: no point in repeating it
          if (error.status === 401 || error.status === 403 || error.status === 410) return fail(error.userMessage);
          $("status").textContent = error.userMessage || say("error.failed");
          break;
        }
      }
    }
    sending = false;
    render();
  }

  async function start() {
    applyTheme();
    if (!tg || !tg.initData) return fail();  // not opened by Telegram: ask the server nothing
    tg.ready();
    tg.expand();
    if (tg.onEvent) tg.onEvent("themeChanged", applyTheme);
    token = new URLSearchParams(location.search).get("t") || (tg.initDataUnsafe && tg.initDataUnsafe.start_param) || "";
    let session;
    try {
      session = await (await api("/api/session", {})).json();
    } catch (error) {
      return fail(error.userMessage);
    }
    texts = session.texts;
    lang = session.lang;
    maxHints = session.max_hints;
    document.documentElement.lang = lang;
    document.title = say("title");
    $("tip").textContent = say("tap");
    $("suggested-label").textContent = say("suggested");
    $("custom-label").textContent = say("custom");
    $("remove").textContent = say("remove");
    $("undo").textContent = say("undo");
    $("reset").textContent = say("reset");
    $("compare-label").textContent = say("compare");
    $("send").textContent = say("send");
    const photo = $("photo");
    photo.addEventListener("load", () => {
      $("app").hidden = false;
      $("app").dataset.ready = "1";
      render();
      preview();  // the automatic colouring first: the "after" of the slider
    }, {once: true});
    photo.addEventListener("error", () => fail(say("error.expired")), {once: true});
    photo.src = session.photo;
    setupStage();
    $("colour").addEventListener("change", (event) => setColour(rgbOf(event.target.value)));
    $("remove").addEventListener("click", () => {
      if (selected < 0) return;
      remember();
      hints.splice(selected, 1);
      selected = -1;
      changed();
    });
    $("undo").addEventListener("click", () => {
      if (!history.length) return;
      hints = history.pop();
      selected = Math.min(selected, hints.length - 1);
      changed();
    });
    $("reset").addEventListener("click", () => {
      if (!hints.length) return;
      remember();
      hints = [];
      selected = -1;
      changed();
    });
    $("compare").addEventListener("input", (event) => {
      $("preview").style.clipPath = "inset(0 " + (100 - Number(event.target.value)) + "% 0 0)";
    });
    $("send").addEventListener("click", send);
  }

  start();
})();
