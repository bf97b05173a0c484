// The status page: every node's power, boot override and health, live; power and boot
// buttons and the serial console, all through the BMC's own Redfish service (same origin,
// the browser's Basic credentials).
"use strict";

const SHOWN = 500;             // cards drawn at most; the filter finds the others
const nodes = new Map();       // id -> the node's summary
let refreshing = null;

async function redfish(method, path, body) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const answer = await fetch(path, options);
  if (!answer.ok) {
    let message = `${answer.status} ${answer.statusText}`;
    try { message = (await answer.json()).error.message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return answer.status === 204 ? null : answer.json();
}

async function refresh() {
  const answer = await redfish("GET", "/status/nodes");
  nodes.clear();
  for (const node of answer.Nodes) nodes.set(node.Id, node);
  draw();
}

function soon() {   // events come in bursts: one refresh for a burst
  if (refreshing === null) {
    refreshing = setTimeout(() => { refreshing = null; refresh().catch(showError); }, 150);
  }
}

function bootText(boot) {
  if (boot.BootSourceOverrideEnabled === "Disabled" || boot.BootSourceOverrideTarget === "None") {
    return "boot: no override";
  }
  const how = boot.BootSourceOverrideEnabled === "Once" ? "once" : "persistent";
  return `boot: ${boot.BootSourceOverrideTarget}, ${how}, ${boot.BootSourceOverrideMode}`;
}

function draw() {
  const filter = document.getElementById("filter").value.trim().toLowerCase();
  const all = [...nodes.values()];
  const on = all.filter((n) => n.PowerState === "On").length;
  document.getElementById("counts").textContent =
    `${all.length} nodes: ${on} on, ${all.length - on} off`;
  const matching = all.filter((n) => !filter || n.Name.toLowerCase().includes(filter));
  const main = document.getElementById("nodes");
  const more = document.getElementById("more");
  more.hidden = matching.length <= SHOWN;
  more.textContent = `${matching.length - SHOWN} more: filter to find them`;
  const cards = new Map([...main.children].map((card) => [card.dataset.node, card]));
  const wanted = matching.slice(0, SHOWN);
  for (const [id, card] of cards) if (!wanted.some((n) => n.Id === id)) card.remove();
  wanted.forEach((node, index) => {
    const card = cards.get(node.Id) || makeCard(node);
    fill(card, node);
    if (main.children[index] !== card) main.insertBefore(card, main.children[index] || null);
  });
}

function makeCard(node) {
  const card = document.getElementById("card").content.firstElementChild.cloneNode(true);
  card.dataset.node = node.Id;
  for (const button of card.querySelectorAll("[data-reset]")) {
    button.addEventListener("click", () => act(card, () => redfish(
      "POST", `/redfish/v1/Systems/${node.Id}/Actions/ComputerSystem.Reset`,
      { ResetType: button.dataset.reset })));
  }
  card.querySelector(".set-boot").addEventListener("click", () => act(card, () => redfish(
    "PATCH", `/redfish/v1/Systems/${node.Id}`, { Boot: {
      BootSourceOverrideTarget: card.querySelector(".boot-target").value,
      BootSourceOverrideEnabled: card.querySelector(".boot-enabled").value } })));
  card.querySelector(".open-console").addEventListener("click",
    () => openConsole(nodes.get(node.Id)));
  return card;
}

function fill(card, node) {
  card.querySelector(".name").textContent = node.Name;
  const power = card.querySelector(".power");
  power.textContent = node.Pending ? `${node.PowerState} …` : node.PowerState;
  power.className = `power ${node.PowerState}`;
  const health = card.querySelector(".health");
  health.textContent = node.Health === "OK" ? "" : node.Health;
  health.className = `health ${node.Health}`;
  card.querySelector(".kind").textContent = node.Kind + (node.Media ? " · CD inserted" : "");
  card.querySelector(".boot").textContent = bootText(node.Boot);
  const select = card.querySelector(".boot-target");
  if (select.options.length !== node.BootTargets.length) {
    select.replaceChildren(...node.BootTargets.map((t) => new Option(t, t)));
  }
  for (const button of card.querySelectorAll("[data-reset]")) {
    button.hidden = !node.ResetTypes.includes(button.dataset.reset);
  }
  card.querySelector(".open-console").hidden = !node.Console;
}

async function act(card, call) {
  const error = card.querySelector(".error");
  error.textContent = "";
  try {
    await call();
    soon();
  } catch (exc) {
    error.textContent = exc.message;
  }
}

function openConsole(node) {
  const dialog = document.getElementById("console");
  const output = document.getElementById("console-output");
  document.getElementById("console-title").textContent = `${node.Name}: serial console`;
  output.textContent = "";
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}${node.Console}`);
  socket.binaryType = "arraybuffer";
  const decoder = new TextDecoder();
  socket.onmessage = (message) => {
    const text = typeof message.data === "string" ? message.data
      : decoder.decode(message.data, { stream: true });
    output.textContent += text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
    if (output.textContent.length > 200000) output.textContent = output.textContent.slice(-100000);
    output.scrollTop = output.scrollHeight;
  };
  socket.onclose = () => { output.textContent += "\n[console closed]\n"; };
  const form = document.getElementById("console-form");
  const input = document.getElementById("console-input");
  form.onsubmit = (event) => {
    event.preventDefault();
    socket.send(new TextEncoder().encode(`${input.value}\r`));
    input.value = "";
  };
  document.getElementById("console-close").onclick = () => dialog.close();
  dialog.onclose = () => socket.close();
  dialog.showModal();
  input.focus();
}

function showError(exc) {
  document.getElementById("counts").textContent = `cannot read the nodes: ${exc.message}`;
}

function listen() {
  const live = document.getElementById("live");
  const events = new EventSource("/redfish/v1/EventService/SSE");
  events.onopen = () => live.classList.add("on");
  events.onmessage = soon;
  events.onerror = () => live.classList.remove("on");   // the browser reconnects by itself
}

document.getElementById("filter").addEventListener("input", draw);
refresh().catch(showError);
listen();
setInterval(() => refresh().catch(showError), 30000);   // changes the events may have missed
