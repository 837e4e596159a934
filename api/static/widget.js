/*
 * Chat widget of L'Agence des Copines: plain JavaScript, no dependency, no build step.
 *
 *   <script src="https://chat.example.com/widget.js" data-user-id="client-42" defer></script>
 *
 * Attributes (all optional):
 *   data-api            API base URL (default: the /api next to this script, e.g. /api/v2 via nginx)
 *   data-user-id        the visitor's id on the host site (default: an anonymous id kept in localStorage)
 *   data-user-token     HMAC-SHA256(WIDGET_SECRET, user id) in hex, from the site's backend, when the
 *                       API is set to check identities (WIDGET_SECRET)
 *   data-v2-percentage  0-100, share of users on v2 (default 100); the choice is a stable hash of the
 *                       user id, so a user keeps the same version on every message and every visit,
 *                       and raising the percentage only moves users from v1 to v2. 0 is the rollback.
 *   data-v1-url         the v1 (n8n) webhook, for users outside the v2 share
 *   data-title          the panel's title; data-open="true" opens it at load
 *   data-poll-seconds   how often to look for the team's reply while a person has the conversation
 *
 * Streams answers from POST {api}/chat/stream (fetch + a stream reader: EventSource cannot POST),
 * resumes a dropped stream with GET {api}/chat/stream/{answer id} and Last-Event-ID, and never sends
 * a message twice. Every stream event is also dispatched on the host element as `chatbot:event`.
 */
(function () {
  "use strict";
  if (window.AgenceChatWidget && window.AgenceChatWidget.mounted) return;

  const script = document.currentScript || document.querySelector('script[src*="widget.js"]');
  const options = (script && script.dataset) || {};

  const TEXT = {
    open: "Discuter avec nous",
    close: "Fermer la discussion",
    title: options.title || "L'Agence des Copines",
    placeholder: "Écrivez votre message…",
    send: "Envoyer",
    restart: "Nouvelle conversation",
    welcome: "Bonjour ! Posez votre question : Audrey (automatisation) ou Carole (contenus) vous répond.",
    waiting: "Un membre de l'équipe a la conversation : sa réponse s'affichera ici.",
    offline: "Impossible de joindre le service. Vérifiez votre connexion puis réessayez.",
    rateLimited: "Trop de messages. Attendez quelques instants.",
    failed: "Le service n'a pas pu répondre. Réessayez dans un instant.",
    droppedEarly: "La connexion a été coupée avant que votre message soit confirmé. Vérifiez la conversation avant de le renvoyer.",
    droppedSaved: "La connexion a été interrompue. Votre message est bien enregistré : la réponse apparaîtra en rechargeant la conversation.",
    reload: "Recharger la conversation",
    interrupted: "(réponse interrompue)",
    useful: "Réponse utile",
    notUseful: "Réponse pas utile",
    commentPrompt: "Qu'est-ce qui n'allait pas ? (facultatif)",
    commentSend: "Envoyer l'avis",
    thanks: "Merci pour votre avis.",
    feedbackFailed: "Votre avis n'a pas pu être enregistré.",
    sources: "Sources",
  };
  const PERSONAS = { audrey: "Audrey", carole: "Carole", escalate: "Un membre de l'équipe" };
  const TEAM = "Un membre de l'équipe";
  const HANDOFF_ROUTER = "handoff";
  const RESUME_DELAYS_MS = [500, 1500, 4000];
  const HISTORY_CHECKS = 5;

  // --- settings ------------------------------------------------------------------------------
  function defaultApi(src) {
    const url = new URL(src || "/widget.js", location.href);
    const folder = url.pathname.replace(/[^/]*$/, "");
    return url.origin + (/\/api(\/v\d+)?\/$/.test(folder) ? folder.slice(0, -1) : folder + "api");
  }
  const api = (options.api || defaultApi(script && script.src)).replace(/\/+$/, "");
  const pollMs = Math.max(1, Number(options.pollSeconds) || 10) * 1000;

  const memory = {};
  const store = {
    get(key) {
      try { return window.localStorage.getItem(key); } catch (e) { return memory[key] || null; }
    },
    set(key, value) {
      try { window.localStorage.setItem(key, value); } catch (e) { memory[key] = value; }
    },
  };
  function randomId(prefix) {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes); // works outside secure contexts, unlike randomUUID
    return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function validId(value) {
    return typeof value === "string" && /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/.test(value);
  }

  const userId = validId(options.userId) ? options.userId : store.get("agence-chat:user") || randomId("anon-");
  if (!validId(options.userId)) store.set("agence-chat:user", userId);
  const userToken = /^[0-9a-fA-F]{64}$/.test(options.userToken || "") ? options.userToken : null;
  // The identity every request carries: as query parameters (GET) or in the JSON body (POST).
  const identity = () => "user_id=" + encodeURIComponent(userId) + (userToken ? "&user_token=" + userToken : "");
  const conversationKey = "agence-chat:conversation:" + userId;
  let conversationId = store.get(conversationKey);
  if (!validId(conversationId)) newConversationId();

  function newConversationId() {
    conversationId = randomId("c-");
    store.set(conversationKey, conversationId);
  }

  // FNV-1a (32 bits) of the user id's UTF-8 bytes, modulo 100: the user's A/B bucket.
  function bucket(id) {
    let hash = 0x811c9dc5;
    for (const byte of new TextEncoder().encode(id)) {
      hash ^= byte;
      hash = Math.imul(hash, 0x01000193) >>> 0;
    }
    return hash % 100;
  }
  const v1Url = options.v1Url || "";
  let percentage = options.v2Percentage === undefined ? 100 : Number(options.v2Percentage);
  if (!Number.isFinite(percentage)) {
    console.warn("widget: data-v2-percentage is not a number; staying on " + (v1Url ? "v1" : "v2"));
    percentage = v1Url ? 0 : 100;
  }
  percentage = Math.min(100, Math.max(0, percentage));
  if (!v1Url && percentage < 100) console.warn("widget: no data-v1-url, every user stays on v2");
  const version = v1Url && bucket(userId) >= percentage ? "v1" : "v2";

  // --- DOM -----------------------------------------------------------------------------------
  const host = document.createElement("div");
  host.id = "agence-chat-widget";
  host.dataset.version = version;
  const root = host.attachShadow({ mode: "open" });
  root.innerHTML = `
    <style>
      :host { all: initial; }
      * { box-sizing: border-box; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
      .launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; border: 0; border-radius: 999px;
        padding: 12px 18px; background: #7c4dff; color: #fff; cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.2); }
      .panel { position: fixed; right: 20px; bottom: 20px; z-index: 2147483001; width: min(380px, calc(100vw - 24px));
        height: min(600px, calc(100vh - 40px)); display: flex; flex-direction: column; background: #fff; color: #222;
        border-radius: 14px; box-shadow: 0 8px 30px rgba(0,0,0,.25); overflow: hidden; }
      .panel[hidden], .launcher[hidden], .banner[hidden], .status:empty { display: none; }
      header { display: flex; align-items: center; gap: 6px; padding: 10px 12px; background: #7c4dff; color: #fff; }
      header h2 { flex: 1; margin: 0; font-size: 15px; font-weight: 600; }
      header button { border: 0; background: transparent; color: #fff; cursor: pointer; padding: 4px 6px; }
      .banner { padding: 8px 12px; background: #fff4d6; border-bottom: 1px solid #f0dfa8; font-size: 13px; }
      .log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 10px; background: #faf9ff; }
      .msg { max-width: 88%; padding: 8px 11px; border-radius: 12px; white-space: pre-wrap; word-wrap: break-word; }
      .msg.user { align-self: flex-end; background: #7c4dff; color: #fff; }
      .msg.bot, .msg.team { align-self: flex-start; background: #fff; border: 1px solid #e6e1ff; }
      .msg.team { border-color: #f0c36d; background: #fffaf0; }
      .msg.notice { align-self: center; background: transparent; color: #666; font-size: 12px; text-align: center; }
      .who { display: block; font-size: 12px; font-weight: 600; color: #5b3cc4; margin-bottom: 2px; }
      .msg[data-state="waiting"] .text::after { content: "…"; color: #999; }
      .msg.error .text, .msg .error { color: #b00020; }
      .sources { margin: 6px 0 0; padding-left: 18px; font-size: 12px; color: #555; white-space: normal; }
      .feedback { display: flex; gap: 4px; align-items: center; margin-top: 6px; font-size: 12px; color: #666; white-space: normal; }
      .feedback button { border: 1px solid #ddd; background: #fff; border-radius: 6px; cursor: pointer; padding: 1px 6px; }
      .feedback button[aria-pressed="true"] { background: #e6e1ff; border-color: #7c4dff; }
      .feedback input { flex: 1; min-width: 0; font-size: 12px; padding: 2px 4px; }
      .reload { margin-top: 6px; border: 1px solid #7c4dff; background: #fff; color: #5b3cc4; border-radius: 6px; cursor: pointer; }
      form { display: flex; gap: 6px; padding: 10px; border-top: 1px solid #eee; }
      textarea { flex: 1; resize: none; height: 42px; padding: 8px; border: 1px solid #ccc; border-radius: 8px; }
      form button { border: 0; border-radius: 8px; background: #7c4dff; color: #fff; padding: 0 14px; cursor: pointer; }
      form button:disabled { background: #b9a7f5; cursor: default; }
      .status { padding: 0 12px 8px; color: #b00020; font-size: 12px; }
    </style>
    <button class="launcher" type="button"></button>
    <section class="panel" hidden role="dialog">
      <header><h2></h2><button class="restart" type="button"></button><button class="close" type="button">✕</button></header>
      <div class="banner" hidden role="status"></div>
      <div class="log" role="log" aria-live="polite"></div>
      <div class="status" role="alert"></div>
      <form><textarea name="message" maxlength="4000"></textarea><button type="submit"></button></form>
    </section>`;
  const $ = (selector) => root.querySelector(selector);
  const launcher = $(".launcher");
  const panel = $(".panel");
  const log = $(".log");
  const banner = $(".banner");
  const status = $(".status");
  const form = $("form");
  const input = $("textarea");
  const sendButton = $("form button");
  launcher.textContent = TEXT.open;
  panel.setAttribute("aria-label", TEXT.title);
  $("h2").textContent = TEXT.title;
  $(".restart").textContent = TEXT.restart;
  $(".close").setAttribute("aria-label", TEXT.close);
  banner.textContent = TEXT.waiting;
  input.placeholder = TEXT.placeholder;
  sendButton.textContent = TEXT.send;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function scrollDown() { log.scrollTop = log.scrollHeight; }
  function emit(kind, data, id) {
    host.dispatchEvent(new CustomEvent("chatbot:event", { detail: { kind, data, id }, bubbles: true, composed: true }));
  }

  const seen = new Set(); // message ids already on screen
  function addUser(text) {
    const node = el("div", "msg user", text);
    log.append(node);
    scrollDown();
    return node;
  }
  function addBot(kind) {
    const node = el("div", "msg " + (kind || "bot"));
    node.dataset.state = "waiting";
    node.append(el("span", "who", ""), el("span", "text"));
    log.append(node);
    scrollDown();
    return node;
  }
  function setWho(node, label) { node.querySelector(".who").textContent = label; }
  function setPersona(node, agent) {
    node.dataset.agent = agent;
    setWho(node, PERSONAS[agent] || "");
  }
  function showError(node, message) {
    node.dataset.state = "error";
    node.classList.add("error");
    if (!node.querySelector(".text").textContent) node.querySelector(".text").textContent = message;
    else node.append(el("div", "error", message));
    scrollDown();
  }
  function showSources(node, sources) {
    const old = node.querySelector(".sources");
    if (old) old.remove();
    if (!sources || !sources.length) return;
    const list = el("ol", "sources");
    list.setAttribute("aria-label", TEXT.sources);
    for (const source of sources) {
      const item = el("li", "", source.section ? `${source.title} — ${source.section}` : source.title || source.source);
      item.value = source.number;
      item.title = source.excerpt || "";
      list.append(item);
    }
    node.insertBefore(list, node.querySelector(".feedback"));
  }
  function addFeedback(node, messageId, rating) {
    if (node.querySelector(".feedback")) return;
    const bar = el("div", "feedback");
    const up = el("button", "up", "👍");
    const down = el("button", "down", "👎");
    up.type = down.type = "button";
    up.setAttribute("aria-label", TEXT.useful);
    down.setAttribute("aria-label", TEXT.notUseful);
    const note = el("span", "note");
    const press = (value) => {
      up.setAttribute("aria-pressed", String(value === "up"));
      down.setAttribute("aria-pressed", String(value === "down"));
    };
    press(rating);
    async function rate(value, comment) {
      try {
        const response = await fetch(`${api}/messages/${encodeURIComponent(messageId)}/feedback`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ user_id: userId, user_token: userToken || undefined, rating: value, comment: comment || null }),
        });
        if (!response.ok) throw new Error(String(response.status));
        press(value);
        note.textContent = TEXT.thanks;
        return true;
      } catch (e) {
        note.textContent = TEXT.feedbackFailed;
        return false;
      }
    }
    up.onclick = () => { rate("up"); const box = bar.querySelector("form"); if (box) box.remove(); };
    down.onclick = async () => {
      if (!(await rate("down")) || bar.querySelector("form")) return;
      const box = el("form");
      const comment = el("input");
      comment.placeholder = TEXT.commentPrompt;
      comment.maxLength = 2000;
      const submit = el("button", "", TEXT.commentSend);
      submit.type = "submit";
      box.append(comment, submit);
      box.onsubmit = async (event) => {
        event.preventDefault();
        if (await rate("down", comment.value.trim())) box.remove();
      };
      bar.append(box);
      comment.focus();
    };
    bar.append(up, down, note);
    node.append(bar);
  }

  // --- history and the team's replies ---------------------------------------------------------
  async function fetchHistory() {
    try {
      const url = `${api}/conversations/${encodeURIComponent(conversationId)}/messages?${identity()}`;
      const response = await fetch(url);
      if (response.status === 403) { newConversationId(); return null; }
      return response.ok ? await response.json() : null;
    } catch (e) {
      return null;
    }
  }
  function renderStored(message) {
    if (seen.has(message.id)) return;
    seen.add(message.id);
    if (message.role === "user") { addUser(message.content); return; }
    if (message.role === "notice") { log.append(el("div", "msg notice", message.content)); scrollDown(); return; }
    const team = message.role === "human_agent";
    const node = addBot(team ? "team" : "bot");
    node.dataset.messageId = message.id;
    node.dataset.state = "done";
    node.querySelector(".text").textContent = message.content;
    if (team) setWho(node, message.author ? `${TEAM} · ${message.author}` : TEAM);
    else setPersona(node, message.agent);
    if (message.status === "interrupted") node.append(el("div", "error", TEXT.interrupted));
    showSources(node, message.sources);
    addFeedback(node, message.id, message.rating);
  }
  function applyHistory(history) {
    for (const message of history.messages) renderStored(message);
    if (history.status === "waiting_for_human") enterWaiting(); else leaveWaiting();
  }
  async function loadHistory() {
    const history = await fetchHistory();
    if (history) applyHistory(history);
    if (!log.children.length) log.append(el("div", "msg notice", TEXT.welcome));
  }

  let waiting = false;
  let pollTimer = null;
  function enterWaiting() {
    banner.hidden = false;
    if (waiting) return;
    waiting = true;
    pollTimer = setTimeout(poll, pollMs);
  }
  function leaveWaiting() {
    waiting = false;
    banner.hidden = true;
    clearTimeout(pollTimer);
  }
  async function poll() {
    if (!waiting) return;
    if (!document.hidden && !panel.hidden) {
      const history = await fetchHistory();
      if (history) applyHistory(history);
    }
    if (waiting) pollTimer = setTimeout(poll, pollMs);
  }

  // --- the stream ----------------------------------------------------------------------------
  function handle(turn, kind, data, id) {
    if (id) turn.lastEventId = id;
    const node = turn.node;
    switch (kind) {
      case "metadata":
        turn.answerId = data.message_id;
        node.dataset.messageId = data.message_id;
        seen.add(data.message_id);
        seen.add(data.user_message_id);
        break;
      case "route":
        turn.held = data.router === HANDOFF_ROUTER;
        if (turn.held) {
          // An automatic acknowledgement while the team has the conversation, not a person.
          node.dataset.agent = data.agent;
          setWho(node, TEXT.title);
          enterWaiting();
        } else {
          setPersona(node, data.agent);
        }
        break;
      case "sources":
        showSources(node, data.sources);
        break;
      case "token":
        node.dataset.state = "streaming";
        node.querySelector(".text").append(document.createTextNode(data.text));
        scrollDown();
        break;
      case "end":
        turn.finished = true;
        node.dataset.state = "done";
        if (!turn.held) {
          setPersona(node, data.agent);
          addFeedback(node, data.message_id, null);
        }
        if (data.agent === "escalate") enterWaiting();
        break;
      case "error":
        turn.finished = true;
        showError(node, data.message || TEXT.failed);
        break;
    }
    emit(kind, data, id);
  }

  // Reads Server-Sent Events from a fetch response until it ends or the connection drops.
  async function consume(response, turn) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const dispatch = (block) => {
      let kind = "message", id = null;
      const data = [];
      for (const line of block.split(/\r\n|\r|\n/)) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") data.push(value);
        else if (field === "event") kind = value;
        else if (field === "id") id = value;
      }
      if (!data.length) return;
      let parsed;
      try { parsed = JSON.parse(data.join("\n")); } catch (e) { return; }
      handle(turn, kind, parsed, id);
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let match;
        while ((match = /\r\n\r\n|\n\n|\r\r/.exec(buffer))) {
          dispatch(buffer.slice(0, match.index));
          buffer = buffer.slice(match.index + match[0].length);
        }
      }
      buffer += decoder.decode();
      if (buffer.trim()) dispatch(buffer);
    } catch (e) {
      // The connection dropped: the caller resumes from turn.lastEventId.
    }
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch (e) { /* not JSON */ }
    return response.status === 429 ? TEXT.rateLimited : TEXT.failed;
  }

  function cooldown(response) {
    const seconds = Number(response.headers.get("Retry-After")) || 0;
    if (seconds <= 0) return;
    blockedUntil = Date.now() + Math.min(seconds, 120) * 1000;
    setTimeout(updateSend, Math.min(seconds, 120) * 1000 + 50);
    updateSend();
  }

  function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

  // After a drop: resume the stream where it stopped, or find the saved answer; never resend.
  async function recover(turn) {
    if (!turn.answerId) { showError(turn.node, TEXT.droppedEarly); return; }
    for (const delay of RESUME_DELAYS_MS) {
      if (turn.finished) return;
      await sleep(delay);
      let response;
      try {
        const headers = { Accept: "text/event-stream" };
        if (turn.lastEventId) headers["Last-Event-ID"] = turn.lastEventId;
        response = await fetch(
          `${api}/chat/stream/${encodeURIComponent(turn.answerId)}?${identity()}`,
          { headers },
        );
      } catch (e) {
        continue; // still offline
      }
      const type = response.headers.get("Content-Type") || "";
      if (response.ok && type.startsWith("text/event-stream")) { await consume(response, turn); continue; }
      if ([404, 405, 410, 501].includes(response.status)) break; // no resume here
    }
    if (turn.finished) return;
    for (let check = 0; check < HISTORY_CHECKS; check++) {
      const history = await fetchHistory();
      const saved = history && history.messages.find((m) => m.id === turn.answerId);
      if (saved) {
        turn.finished = true;
        turn.node.remove();
        seen.delete(saved.id);
        applyHistory(history);
        return;
      }
      await sleep(1000 * (check + 1));
    }
    showError(turn.node, TEXT.droppedSaved);
    const reload = el("button", "reload", TEXT.reload);
    reload.type = "button";
    reload.onclick = async () => { log.replaceChildren(); seen.clear(); await loadHistory(); };
    turn.node.append(reload);
  }

  async function sendV2(text, node, retried) {
    let response;
    try {
      response = await fetch(`${api}/chat/stream`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({
          user_id: userId,
          user_token: userToken || undefined,
          conversation_id: conversationId,
          message: text,
          timestamp: new Date().toISOString(),
        }),
      });
    } catch (e) {
      showError(node, TEXT.offline);
      return;
    }
    if ((response.status === 403 || response.status === 404) && !retried) {
      // The stored conversation is someone else's (or gone): nothing was saved, start afresh.
      newConversationId();
      return sendV2(text, node, true);
    }
    if (!response.ok) {
      showError(node, await errorMessage(response));
      if (response.status === 429) cooldown(response);
      return;
    }
    const turn = { node, answerId: null, lastEventId: null, finished: false, held: false };
    await consume(response, turn);
    if (!turn.finished) await recover(turn);
  }

  async function sendV1(text, node) {
    let response;
    try {
      response = await fetch(v1Url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ userId, conversationId, message: text, timestamp: new Date().toISOString() }),
      });
    } catch (e) {
      showError(node, TEXT.offline);
      return;
    }
    if (!response.ok) {
      showError(node, await errorMessage(response));
      if (response.status === 429) cooldown(response);
      return;
    }
    let data = {};
    try { data = await response.json(); } catch (e) { /* empty body */ }
    const answer = data.message || data.output || data.text || data.response || "";
    if (!answer) { showError(node, TEXT.failed); return; }
    if (data.agent) setPersona(node, data.agent);
    node.querySelector(".text").textContent = answer;
    node.dataset.state = "done";
    scrollDown();
  }

  let busy = false;
  let blockedUntil = 0;
  function updateSend() {
    sendButton.disabled = busy || Date.now() < blockedUntil;
  }
  form.onsubmit = async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || busy || Date.now() < blockedUntil) return;
    busy = true;
    updateSend();
    input.value = "";
    const welcome = log.querySelector(".msg.notice:only-child");
    if (welcome && welcome.textContent === TEXT.welcome) welcome.remove();
    addUser(text);
    const node = addBot();
    try {
      await (version === "v2" ? sendV2(text, node, false) : sendV1(text, node));
    } finally {
      busy = false;
      updateSend();
      input.focus();
    }
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });

  function open() {
    panel.hidden = false;
    launcher.hidden = true;
    input.focus();
    if (waiting) poll();
  }
  function close() {
    panel.hidden = true;
    launcher.hidden = false;
  }
  launcher.onclick = open;
  $(".close").onclick = close;
  $(".restart").onclick = () => {
    newConversationId();
    leaveWaiting();
    seen.clear();
    log.replaceChildren(el("div", "msg notice", TEXT.welcome));
  };

  function mount() {
    document.body.append(host);
    if (version === "v2") loadHistory(); else log.append(el("div", "msg notice", TEXT.welcome));
    if (options.open === "true") open();
    emit("ready", { version, user_id: userId, conversation_id: conversationId }, null);
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);

  window.AgenceChatWidget = {
    mounted: true,
    version,
    userId,
    bucket,
    open,
    close,
    get conversationId() { return conversationId; },
  };
})();
