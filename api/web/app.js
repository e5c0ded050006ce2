// mmsearch's page: search by words or by a picture, see moments, play them, ask for an answer.
// Plain JS against the HTTP API; no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const results = $("results"), status = $("status"), answer = $("answer");
const MAX_SIDE = 1600;  // a larger picture is shrunk in the browser before upload (the model sees 224 px)
let found = [];  // every hit of the last search, weak ones included (the API's all=true)
let visible = [];  // the hits on screen, in order: the viewer steps through them
let viewing = -1;  // the hit open in the viewer
let year = "";  // the year picked on the timeline; "" for any
const marks = new Map();  // item id -> true (right) or false (wrong): feedback on hits, and a concept's examples
let again = null;  // the last search, to run again with the marks

function clock(t) {
  const s = Math.floor(t), m = Math.floor(s / 60);
  return `${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

function say(text, error = false) {
  status.textContent = text;
  status.className = error ? "error" : "";
}

function filters() {
  const p = new URLSearchParams({ k: "24", all: "true" });
  if ($("kind").value) p.set("kind", $("kind").value);
  if ($("sort").value) p.set("sort", $("sort").value);  // when it was taken, not how well it matches
  const where = [$("where").value.trim(), year && `taken_at >= ${year}-01-01 and taken_at < ${+year + 1}-01-01`]
    .filter(Boolean);
  if (where.length) p.set("where", where.length > 1 ? where.map((w) => `(${w})`).join(" and ") : where[0]);
  if ($("boost").value) p.set("boost", $("boost").value);  // a concept's items first
  if (!$("safe").checked) p.set("safe", "false");  // also what safe search flagged
  return p;
}

function shown(url) {
  // A picture's URL as this search shows it: what safe search flagged comes blurred unless it is off.
  return $("safe").checked ? url : `${url}${url.includes("?") ? "&" : "?"}safe=false`;
}

function withMarks(p) {
  for (const [id, right] of marks) p.append(right ? "liked" : "disliked", id);
  return p;
}

function askForKey() {
  // The key goes into a cookie, so that <img> and <video> sources carry it as well as fetch().
  const dialog = $("keyform");
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const key = $("key").value.trim();
      if (dialog.returnValue !== "ok" || !key) return resolve(false);
      document.cookie = `mmsearch_key=${encodeURIComponent(key)}; path=/; SameSite=Strict`;
      resolve(true);
    }, { once: true });
  });
}

async function call(url, options) {
  const r = await fetch(url, options);
  if (r.status === 401 && await askForKey()) return call(url, options);
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

function outlines(hit) {
  // The lines of text read (OCR), outlined over the thumbnail: the SVG spans the file's pixels and is
  // cropped like the picture (object-fit: cover is preserveAspectRatio slice).
  if (!hit.boxes || !hit.width || !hit.height) return "";
  const rects = hit.boxes.map(([x0, y0, x1, y1]) =>
    `<rect x="${x0}" y="${y0}" width="${x1 - x0}" height="${y1 - y0}"/>`).join("");
  return `<svg class="boxes" viewBox="0 0 ${hit.width} ${hit.height}" preserveAspectRatio="xMidYMid slice"` +
    ` aria-hidden="true">${rects}</svg>`;
}

function card(hit, index) {
  const li = document.createElement("li");
  li.className = hit.weak ? "card weak" : "card";
  const button = document.createElement("button");
  button.dataset.index = index;
  const kind = { said: "speech", written: "written" }[hit.source]  // where the match is: the API says
    || (hit.source === "seen" && hit.t_start != null ? "video" : hit.kind);
  const label = { speech: "said", video: "video moment", written: "written" }[kind] || hit.kind;
  const when = hit.t_start != null ? ` ${clock(hit.t_start)}–${clock(hit.t_end)}` : "";
  const picture = hit.thumbnail_url
    ? `<div class="pic"><img loading="lazy" alt="" src="${shown(hit.thumbnail_url)}">${outlines(hit)}</div>`
    : `<div class="noimg" aria-hidden="true">♪</div>`;
  button.innerHTML = `${picture}<div class="meta"><span class="badge ${kind}">${label}</span>` +
    `<span class="score"></span><div class="name"></div><div class="said"></div></div>`;
  button.querySelector(".score").textContent = hit.score.toFixed(2) + (hit.weak ? " weak" : "");
  button.querySelector(".name").textContent = hit.uri.split(/[\\/]/).pop() + when;
  button.title = hit.uri;
  if (hit.text) button.querySelector(".said").textContent = `“${hit.text}”`;
  button.addEventListener("click", () => open(index));
  li.append(button, markButtons(hit.item_id, li));
  if (hit.more) li.append(moreShots(hit));
  li.classList.toggle("liked", marks.get(hit.item_id) === true);
  li.classList.toggle("disliked", marks.get(hit.item_id) === false);
  return li;
}

function moreShots(hit) {
  // A stack (shots of one moment) is one hit, its best shot: "+N more" shows them all, like this one first.
  const b = document.createElement("button");
  b.type = "button";
  b.className = "shots";
  b.textContent = `+${hit.more} more`;
  b.title = `The other ${plural(hit.more, "shot")} of this moment`;
  b.addEventListener("click", () => searchStack(hit));
  return b;
}

async function searchStack(hit) {
  say("Searching…");
  try {
    const body = JSON.stringify({
      terms: [{ item_id: hit.item_id }], where: `stack = ${hit.stack}`, every_shot: true, k: 24, all: true,
      safe: $("safe").checked,
    });
    const found = await call("/search", { method: "POST", headers: { "content-type": "application/json" }, body });
    again = null;
    show(found.hits, found.took_ms);
  } catch (e) { say(e.message, true); }
}

function markButtons(id, li) {
  // 👍 / 👎 on a hit: feedback for "Search again", and examples for "Teach"; a second click unmarks.
  const span = document.createElement("span");
  span.className = "marks";
  for (const [right, sign, label] of [[true, "👍", "Right"], [false, "👎", "Wrong"]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = sign;
    b.setAttribute("aria-label", `${label}: item ${id}`);
    b.addEventListener("click", () => {
      if (marks.get(id) === right) marks.delete(id);
      else marks.set(id, right);
      li.classList.toggle("liked", marks.get(id) === true);
      li.classList.toggle("disliked", marks.get(id) === false);
      showMarks();
    });
    span.append(b);
  }
  return span;
}

function showMarks() {
  const right = [...marks.values()].filter(Boolean).length;
  $("teach").hidden = !marks.size;
  $("marked").textContent = `${right} right, ${marks.size - right} wrong`;
}

async function teach(name, examples = marks) {
  // The marks as a concept's examples (PUT /admin/concepts/NAME), then its items: the concept searched.
  if (!name) return say("Name the concept first.", true);
  const liked = [...examples].filter(([, r]) => r).map(([id]) => id);
  const disliked = [...examples].filter(([, r]) => !r).map(([id]) => id);
  try {
    const headers = { "content-type": "application/json" };
    const c = await call(`/admin/concepts/${encodeURIComponent(name)}`,
      { method: "PUT", headers, body: JSON.stringify({ liked, disliked }) });
    if (examples === marks) { marks.clear(); showMarks(); }
    await conceptStrip();
    await searchConcept(c.name);
    say(`“${c.name}” holds ${plural(c.items, "item")}, taught ${c.liked} right and ${c.disliked} wrong.`);
  } catch (e) { say(e.message, true); }
}

async function conceptStrip() {
  // The concepts taught (GET /concepts): a click searches one; the Favour menu ranks one's items first.
  const r = await fetch("/concepts");  // no key prompt here: a search asks for one
  const concepts = r.ok ? await r.json() : [];
  const chosen = $("boost").value;
  $("boost").replaceChildren(new Option("favour nothing", ""),
    ...concepts.map((c) => new Option(`favour ${c.name}`, c.name, false, c.name === chosen)));
  $("boost").hidden = !concepts.length;
  $("concepts").replaceChildren(...concepts.map((c) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = c.name;
    b.title = `${plural(c.items, "item")}: its items, surest first`;
    b.addEventListener("click", () => searchConcept(c.name));
    li.append(b);
    return li;
  }));
  $("concepts").hidden = !concepts.length;
}

async function searchConcept(name) {
  say("Searching…");
  showQuery(null);
  try {
    const p = filters();
    const where = p.get("where") || undefined;
    const body = JSON.stringify({ terms: [{ concept: name }], where, k: 24, all: true, safe: $("safe").checked });
    const headers = { "content-type": "application/json" };
    const found = await call("/search", { method: "POST", headers, body });
    again = null;
    show(found.hits, found.took_ms);
    await toLabel(name);
  } catch (e) { say(e.message, true); }
}

async function toLabel(name) {
  // What the concept is least sure of (GET /concepts/NAME/next): one click on 👍 or 👎 teaches it.
  const unsure = await call(`/concepts/${encodeURIComponent(name)}/next?n=6`).catch(() => []);
  $("tolabel").hidden = !unsure.length;
  $("tolabel").querySelector("span").textContent = `Is this “${name}”?`;
  $("tolabel").querySelector("ol").replaceChildren(...unsure.map((u) => {
    const li = document.createElement("li");
    const img = document.createElement("img");
    img.src = u.thumbnail_url;
    img.alt = u.uri.split(/[\\/]/).pop();
    img.title = `${u.uri} (${Math.round(u.probability * 100)}% sure)`;
    li.append(img);
    for (const [right, sign, label] of [[true, "👍", "Yes"], [false, "👎", "No"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = sign;
      b.setAttribute("aria-label", `${label}: item ${u.item_id} is ${name}`);
      b.addEventListener("click", () => teach(name, new Map([[u.item_id, right]])));
      li.append(b);
    }
    return li;
  }));
}

function render(everything) {
  // The good matches, else the best one marked weak (as search/query/relevance.py shows them).
  const good = found.filter((h) => !h.weak);
  visible = everything ? found : good.length ? good : found.slice(0, 1);
  results.replaceChildren(...visible.map(card));
  const weaker = found.length - visible.length;
  $("more").hidden = everything || !weaker;
  $("more").textContent = `Show ${plural(weaker, "weaker match", "weaker matches")}`;
}

function show(hits, took, replied = performance.now()) {
  found = hits;
  render(false);
  // Time from the API's reply to the first frame showing the results (the page's own cost).
  requestAnimationFrame(() => { results.dataset.paintMs = (performance.now() - replied).toFixed(1); });
  if (visible.some((h) => !h.weak)) say(`${plural(visible.length, "result")} in ${Math.round(took)} ms`);
  else if (found.length) say("No good match. The nearest one is shown, marked weak; try other words.");
  else say("Nothing found. Try other words or fewer filters.");
}

function showQuery(picture) {
  // The picture searched with, above its results; gone with the next word search.
  const figure = $("querypic");
  const old = figure.querySelector("img").src;
  if (old) URL.revokeObjectURL(old);
  figure.hidden = !picture;
  if (picture) figure.querySelector("img").src = URL.createObjectURL(picture);
  else figure.querySelector("img").removeAttribute("src");
}

async function searchText(event) {
  event?.preventDefault();
  const q = $("q").value.trim();
  if (!q) return say("Type what to look for, or drop or paste a picture.", true);
  say("Searching…");
  showQuery(null);
  try {
    const p = filters();
    p.set("q", q);
    again = { q };
    const body = await call(`/search?${event?.type === "again" ? withMarks(p) : p}`);
    show(body.hits, body.took_ms);
  } catch (e) { say(e.message, true); }
}

function searchAgain() {
  // The last search with the marks: the query moves toward the right hits and away from the wrong ones.
  if (again?.q) return searchText({ type: "again", preventDefault() {} });
  if (again?.picture) return searchImage(again.picture, true);
  say("Search again works on a search by words or a picture.", true);
}

async function shrink(file) {
  // A phone photo (12 MP, 5 MB) goes up as a 1600 px JPEG: the search is the same, the upload a tenth.
  const bitmap = await createImageBitmap(file).catch(() => null);
  if (!bitmap) return file;  // the server decodes what the browser cannot (TIFF, HEIC) or says why not
  const scale = MAX_SIDE / Math.max(bitmap.width, bitmap.height);
  if (scale >= 1) return file;
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
  return blob ? new File([blob], (file.name || "pasted").replace(/\.\w+$/, "") + ".jpg", { type: "image/jpeg" }) : file;
}

async function searchImage(file, withFeedback = false) {
  if (!file || !file.type.startsWith("image/")) return say("That is not a picture.", true);
  say(`Searching with ${file.name || "the pasted picture"}…`);
  const picture = await shrink(file);
  showQuery(picture);
  again = { picture };
  const form = new FormData();
  form.append("file", picture, picture.name || "pasted.png");
  try {
    const p = withFeedback ? withMarks(filters()) : filters();
    const body = await call(`/search/image?${p}`, { method: "POST", body: form });
    results.dataset.uploaded = String(picture.size);
    show(body.hits, body.took_ms);
  } catch (e) { say(e.message, true); }
}

async function showTranscript(hit) {
  // The lines said around the moment, the moment's own marked; a click plays from a line.
  const lines = $("transcript");
  lines.replaceChildren();
  if (hit.kind !== "video" && hit.kind !== "audio") return;
  const said = await call(hit.item_url + "/transcript").catch(() => []);
  if (visible[viewing] !== hit) return;  // the viewer moved on meanwhile
  const at = said.findIndex((l) => l.t_end > (hit.t_start ?? 0));
  const from = Math.max(0, at - 2);
  lines.replaceChildren(...said.slice(from, from + 5).map((line) => {
    const li = document.createElement("li");
    li.textContent = `${clock(line.t_start)} ${line.text}`;
    if (line.t_start < (hit.t_end ?? 0) && line.t_end > (hit.t_start ?? 0)) li.className = "now";
    li.addEventListener("click", () => {
      const player = $("player").querySelector("video, audio");
      if (player) { player.currentTime = line.t_start; player.play(); }
    });
    return li;
  }));
}

function open(index) {
  viewing = index;
  const hit = visible[index];
  const player = $("player");
  let element;
  if (hit.kind === "video" || hit.kind === "audio") {
    element = document.createElement(hit.kind);
    element.controls = true;
    element.autoplay = true;
    element.src = hit.media_url;  // ends in #t=SECONDS: the player starts at the moment
  } else {
    element = document.createElement("img");
    element.src = hit.thumbnail_url ? shown(hit.thumbnail_url.replace(/thumbnail$/, "thumbnail?size=1600")) : hit.media_url;
    element.alt = hit.uri;
  }
  player.replaceChildren(element);
  $("caption").textContent = hit.uri.split(/[\\/]/).pop() + (hit.t_start != null ? ` at ${clock(hit.t_start)}` : "") +
    (hit.text ? ` — “${hit.text}”` : "");
  $("caption").title = hit.uri;
  $("prev").disabled = index === 0;
  $("next").disabled = index === visible.length - 1;
  showTranscript(hit);
  if (!$("viewer").open) $("viewer").showModal();
}

function step(by) {
  const to = viewing + by;
  if ($("viewer").open && to >= 0 && to < visible.length) open(to);
}

let askOff = null;  // why Ask cannot answer here (GET /answer/status), shown before anyone clicks

async function answerStatus() {
  const r = await fetch("/answer/status");  // no key prompt here: a search asks for one
  if (!r.ok) return;
  const state = await r.json();
  askOff = state.ready ? null : state.message;
  $("ask").classList.toggle("off", !state.ready);
  $("ask").title = state.ready ? "Answer the question from the collection, with citations" : `Ask is off: ${askOff}`;
  $("asknote").hidden = state.ready;
  $("asknote").querySelector("span").textContent = askOff || "";
}

async function ask() {
  const question = $("q").value.trim();
  if (askOff) {
    answer.hidden = false;
    answer.textContent = askOff;
    return say("Ask is off on this server.", true);
  }
  if (!question) return say("Type a question first.", true);
  answer.hidden = false;
  answer.textContent = "";
  results.replaceChildren();  // the last search's hits are not this answer's evidence
  say("Asking…");
  const body = { question };
  if ($("kind").value) body.kind = $("kind").value;
  if ($("where").value.trim()) body.where = $("where").value.trim();
  try {
    const r = await fetch("/answer/stream", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    if (r.status === 401 && await askForKey()) return ask();
    if (!r.ok) throw new Error((await r.json()).error);
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const name = /^event: (.*)$/m.exec(block)?.[1];
        const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] || "null");
        if (name === "evidence") { showQuery(null); show(data, 0); }
        else if (name === "token") answer.textContent += data.text;
        else if (name === "answer") cite(data);
        else if (name === "error") throw new Error(data.error);
      }
    }
    say("");
  } catch (e) { say(e.message, true); }
}

function cite(result) {
  // Citations [n] become links that open the evidence they name.
  const byNumber = new Map(result.evidence.map((e) => [e.number, e]));
  const parts = result.answer.split(/(\[\d+\])/);
  answer.replaceChildren(...parts.map((part) => {
    const n = /^\[(\d+)\]$/.exec(part)?.[1];
    const evidence = n && byNumber.get(Number(n));
    if (!evidence) return document.createTextNode(part);
    const a = document.createElement("a");
    a.textContent = part;
    a.href = "#";
    a.addEventListener("click", (event) => {
      event.preventDefault();
      const at = visible.findIndex((h) => h.segment_id === evidence.segment_id);
      if (at >= 0) open(at);
    });
    return a;
  }));
}

let indexing = false;

function showRun(run) {
  // The index panel shows only to admins (GET /admin/index answers 403 to others) of a server with
  // index roots; while a run goes it polls, and when it ends the results on screen are refreshed.
  $("indexing").hidden = !run.roots.length;
  const going = run.state === "running" || run.state === "cancelling";
  const progress = $("progress");
  $("reindex").disabled = going;
  progress.hidden = !going;
  if (run.total) Object.assign(progress, { max: run.total, value: run.done });
  else progress.removeAttribute("value");
  const folder = (run.root || "").split(/[\\/]/).pop();
  $("indexstate").textContent = going
    ? `Indexing ${folder}: ${run.done} of ${run.total ?? "?"} files`
    : run.state === "idle" ? ""
    : `Index ${run.state}: ${run.indexed} new, ${run.skipped} unchanged, ${run.failed} failed` +
      (run.message ? ` (${run.message})` : "");
  if (going) setTimeout(indexStatus, 1000);
  else if (indexing) {  // a run just ended: new fields and years, new results
    filterExample();
    if ($("q").value.trim()) $("search").requestSubmit();
  }
  indexing = going;
}

async function filterExample() {
  // The filter box suggests a filter on fields this index has (a manifest's, or the built-in ones); the
  // timeline shows where items have dates, and is not asked for where none has one.
  const r = await fetch("/filters");  // no key prompt here: a search asks for one
  if (!r.ok) return;
  const { example, fields } = await r.json();
  $("where").placeholder = `Filter, e.g. ${example}`;
  if ("taken_at" in fields) timeline();
  else $("timeline").hidden = true;
}

async function timeline() {
  // How many items were taken each year (GET /facets), a bar per year: a click keeps the search to that
  // year, a second click lets it go. Hidden where nothing has a date.
  const r = await fetch("/facets?field=taken_at&per=year");  // no key prompt here: a search asks for one
  const counts = r.ok ? (await r.json()).counts : [];
  const most = Math.max(...counts.map((c) => c.count));
  $("timeline").replaceChildren(...counts.map(({ value, count }) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.year = value;
    b.title = `${plural(count, "item")} taken in ${value}`;
    b.setAttribute("aria-pressed", String(value === year));
    b.innerHTML = `<span class="bar"></span><span class="year"></span>`;
    b.querySelector(".bar").style.height = `${Math.max(2, Math.round((24 * count) / most))}px`;
    b.querySelector(".year").textContent = value;
    b.addEventListener("click", () => pickYear(value));
    return b;
  }));
  $("timeline").hidden = !counts.length;
}

function pickYear(value) {
  year = year === value ? "" : value;
  for (const b of $("timeline").children) b.setAttribute("aria-pressed", String(b.dataset.year === year));
  if ($("q").value.trim()) $("search").requestSubmit();
}

async function peopleStrip() {
  // The people found in faces (GET /people), each by their best face: a click searches their pictures
  // (their name as the words: search/query/who.py); an unnamed person is named in place, then searched.
  // Hidden where there are none.
  const r = await fetch("/people");  // no key prompt here: a search asks for one
  const people = r.ok ? await r.json() : [];
  $("people").replaceChildren(...people.map((p) => {
    const li = document.createElement("li");
    const face = document.createElement("img");
    face.src = `${p.face_url}?size=64`;
    face.alt = p.name ? `${p.name}'s face` : "a face, not named yet";
    face.width = face.height = 64;
    const pictures = plural(p.items, "picture");
    if (p.name) {
      const b = document.createElement("button");
      b.type = "button";
      b.title = `${pictures} of ${p.name}`;
      b.append(face, p.name);
      b.addEventListener("click", () => { $("q").value = p.name; $("search").requestSubmit(); });
      li.append(b);
    } else {
      const look = document.createElement("button");
      look.type = "button";
      look.title = `${pictures} of someone not named yet`;
      look.append(face);
      look.addEventListener("click", () => searchPerson(p));
      const name = document.createElement("input");
      name.placeholder = "Name…";
      name.setAttribute("aria-label", `Name this person (${pictures})`);
      name.addEventListener("keydown", (e) => { if (e.key === "Enter") namePerson(p.id, name.value.trim()); });
      li.append(look, name);
    }
    return li;
  }));
  $("people").hidden = !people.length;
}

async function searchPerson(p) {
  // Someone not named yet: their pictures (person = their number), like the one their best face is in.
  say("Searching…");
  showQuery(null);
  try {
    const where = [`person = ${p.id}`, $("where").value.trim()].filter(Boolean).join(" and ");
    const body = JSON.stringify({ terms: [{ item_id: p.best_item }], where, k: 24, all: true, safe: $("safe").checked });
    const found = await call("/search", { method: "POST", headers: { "content-type": "application/json" }, body });
    show(found.hits, found.took_ms);
  } catch (e) { say(e.message, true); }
}

async function namePerson(id, name) {
  if (!name) return;
  try {
    const headers = { "content-type": "application/json" };
    await call(`/admin/people/${id}/name`, { method: "PUT", headers, body: JSON.stringify({ name }) });
    $("q").value = name;
    await peopleStrip();
    $("search").requestSubmit();
  } catch (e) { say(e.message, true); }
}

async function indexStatus() {
  const r = await fetch("/admin/index");  // no key prompt: most visitors may not index
  if (r.ok) showRun(await r.json());
}

async function reindex() {
  try {
    indexing = true;  // a run that ends before this reply still refreshes the results
    showRun(await call("/admin/index", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }));
  } catch (e) { say(e.message, true); }
}

$("search").addEventListener("submit", searchText);
$("again").addEventListener("click", searchAgain);
$("teach").addEventListener("submit", (e) => { e.preventDefault(); teach($("conceptname").value.trim()); });
$("boost").addEventListener("change", () => { if ($("q").value.trim()) $("search").requestSubmit(); });
$("safe").addEventListener("change", () => { if ($("q").value.trim()) $("search").requestSubmit(); });
conceptStrip();
$("reindex").addEventListener("click", reindex);
indexStatus();
filterExample();
peopleStrip();
answerStatus();
$("ask").addEventListener("click", ask);
$("more").addEventListener("click", () => render(true));
$("prev").addEventListener("click", () => step(-1));
$("next").addEventListener("click", () => step(1));
$("viewer").addEventListener("keydown", (e) => {
  if (e.key === "ArrowLeft") step(-1);
  else if (e.key === "ArrowRight") step(1);
});
$("viewer").addEventListener("close", () => $("player").replaceChildren());  // stops playing
$("file").addEventListener("change", (e) => searchImage(e.target.files[0]));
document.addEventListener("paste", (e) => {
  const file = [...e.clipboardData.files].find((f) => f.type.startsWith("image/"));
  if (file) searchImage(file);
});
// Dragging a file anywhere over the page shows the drop zone; leaving the window or dropping hides it.
document.addEventListener("dragenter", (e) => {
  if (e.dataTransfer.types.includes("Files")) $("dropzone").hidden = false;
});
document.addEventListener("dragover", (e) => e.preventDefault());
$("dropzone").addEventListener("dragleave", () => { $("dropzone").hidden = true; });
document.addEventListener("drop", (e) => {
  e.preventDefault();
  $("dropzone").hidden = true;
  searchImage(e.dataTransfer.files[0]);
});
