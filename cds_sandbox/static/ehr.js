// The demo EHR page: every call goes to this app's /api (the CDS Client); cards are drawn as an
// EHR draws them. No framework, no CDN.
"use strict";

const state = { patients: new Map(), serviceId: null, hook: null, draftOrder: null, cards: [] };

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function say(message, isError = false) {
  const status = document.getElementById("status");
  status.textContent = message;
  status.className = isError ? "error" : "";
}

async function api(method, path, body) {
  const options = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.detail || data.error || `HTTP ${response.status}`);
  return data;
}

function logExchange(title, request, response) {
  const exchange = document.getElementById("exchange");
  for (const open of exchange.querySelectorAll("details[open]")) open.open = false;
  const details = el(
    "details",
    { open: "" },
    el("summary", { text: title }),
    el("h3", { text: "Request" }),
    el("pre", { text: JSON.stringify(request, null, 2), tabindex: "0" }),
    el("h3", { text: "Response" }),
    el("pre", { text: JSON.stringify(response, null, 2), tabindex: "0" }),
  );
  exchange.prepend(details);
  while (exchange.children.length > 12) exchange.lastElementChild.remove();
}

function currentPatient() {
  return document.getElementById("patient").value;
}

async function loadRecord() {
  const patientId = currentPatient();
  const data = await api("GET", `/api/patients/${encodeURIComponent(patientId)}/record`);
  if (patientId !== currentPatient()) return; // the user picked another patient meanwhile
  const body = document.querySelector("#record tbody");
  body.replaceChildren(
    ...data.lines.map((line) =>
      el(
        "tr",
        {},
        el("td", { text: line.date }),
        el("td", { text: line.type }),
        el("td", { text: line.what }),
        el("td", { text: line.value }),
        el("td", { text: line.status }),
      ),
    ),
  );
}

function choosePatient() {
  const patient = state.patients.get(currentPatient());
  document.getElementById("patient-description").textContent =
    `${patient.description} Orders are dated ${patient.orderDate}.`;
  document.getElementById("drug").value = patient.draftedDrug;
  state.draftOrder = null;
  document.querySelector("#record tbody").replaceChildren();
  document.getElementById("cards").replaceChildren(el("p", { class: "empty", text: "No hook fired yet for this patient." }));
  loadRecord().catch((error) => say(`Cannot read the record: ${error.message}`, true));
}

async function fire(hook, draftOrder = null) {
  say(`Calling ${hook}…`);
  const body = {
    patientId: currentPatient(),
    hook,
    prefetch: !document.getElementById("no-prefetch").checked,
  };
  if (draftOrder) body.draftOrder = draftOrder;
  else body.drug = document.getElementById("drug").value;
  try {
    const result = await api("POST", "/api/hook", body);
    state.serviceId = result.serviceId;
    state.hook = hook;
    state.draftOrder = result.draftOrder;
    logExchange(`POST /cds-services/${result.serviceId} (${hook}) → ${result.status}`, result.request, result.response);
    const cards = (result.response && result.response.cards) || [];
    state.cards = cards;
    renderCards(cards, result.detailHtml);
    say(result.status === 200 ? `${hook}: ${cards.length} card(s).` : `${hook}: the service answered ${result.status}.`, result.status !== 200);
  } catch (error) {
    say(`${hook} failed: ${error.message}`, true);
  }
}

const INDICATOR_LABELS = { info: "Info", warning: "Warning", critical: "Critical" };

function renderCards(cards, detailHtml) {
  const container = document.getElementById("cards");
  if (cards.length === 0) {
    container.replaceChildren(el("p", { class: "empty", text: "No cards: the service has nothing to say about this order." }));
    return;
  }
  container.replaceChildren(...cards.map((card, index) => renderCard(card, index, detailHtml[index] || "")));
}

function renderCard(card, index, detailHtml) {
  const id = `card-${index}`;
  const indicator = INDICATOR_LABELS[card.indicator] ? card.indicator : "info";
  const article = el("article", { class: `card ${indicator}`, "aria-labelledby": `${id}-summary`, "data-indicator": indicator });
  article.append(
    el("h3", { id: `${id}-summary` }, el("span", { class: "indicator", text: INDICATOR_LABELS[indicator] }), card.summary),
  );
  const detail = el("div", { class: "detail" });
  detail.innerHTML = detailHtml; // rendered by the server from markdown, raw HTML escaped first
  article.append(detail);
  if (card.source) {
    const source = el("p", { class: "source" }, "Source: ");
    source.append(card.source.url ? el("a", { href: card.source.url, target: "_blank", rel: "noopener", text: card.source.label }) : card.source.label);
    if (card.source.topic) source.append(` (topic: ${card.source.topic.display || card.source.topic.code})`);
    article.append(source);
  }
  if (card.links && card.links.length) {
    article.append(
      el(
        "ul",
        { class: "links", "aria-label": "Links" },
        ...card.links.map((link) =>
          el(
            "li",
            {},
            link.type === "smart"
              ? el("button", { type: "button", class: "secondary smart-link", text: link.label, onclick: () => openSmartLink(link) })
              : el("a", { href: link.url, target: "_blank", rel: "noopener", text: link.label }),
          ),
        ),
      ),
    );
  }
  if (card.suggestions && card.suggestions.length) {
    const group = el("div", { role: "group", "aria-label": "Suggestions", class: "suggestions" });
    for (const suggestion of card.suggestions) {
      const label = suggestion.isRecommended ? `${suggestion.label} (recommended)` : suggestion.label;
      group.append(el("button", { type: "button", class: suggestion.isRecommended ? "recommended" : "", text: label, onclick: () => applySuggestion(card, suggestion) }));
    }
    article.append(group);
  }
  article.append(dismissControls(card, id));
  return article;
}

function dismissControls(card, id) {
  const wrapper = el("div", { class: "dismiss" });
  const form = el("form", { hidden: "" });
  const fieldset = el("fieldset", {}, el("legend", { text: "Why is this card dismissed?" }));
  (card.overrideReasons || []).forEach((reason, index) => {
    const inputId = `${id}-reason-${index}`;
    fieldset.append(
      el("p", {}, el("input", { type: "radio", name: `${id}-reason`, id: inputId, value: String(index) }), " ", el("label", { for: inputId, class: "inline", text: reason.display || reason.code })),
    );
  });
  const commentId = `${id}-comment`;
  fieldset.append(el("p", {}, el("label", { for: commentId, text: "Comment (optional)" }), el("input", { type: "text", id: commentId })));
  form.append(fieldset, el("button", { type: "submit", text: "Send dismissal" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const picked = form.querySelector("input[type=radio]:checked");
    const reason = picked ? card.overrideReasons[Number(picked.value)] : null;
    const comment = form.querySelector(`#${commentId}`).value;
    const body = { serviceId: state.serviceId, card, reason, comment };
    try {
      const result = await api("POST", "/api/dismiss", body);
      logExchange(`POST /cds-services/${state.serviceId}/feedback (overridden) → ${result.status}`, result.request, result.response);
      wrapper.closest("article").remove();
      say(result.status === 200 ? "Card dismissed; feedback sent." : `Feedback refused (${result.status}).`, result.status !== 200);
    } catch (error) {
      say(`Dismiss failed: ${error.message}`, true);
    }
  });
  const toggle = el("button", {
    type: "button",
    class: "secondary",
    "aria-expanded": "false",
    text: "Dismiss card",
    onclick: () => {
      form.hidden = !form.hidden;
      toggle.setAttribute("aria-expanded", String(!form.hidden));
    },
  });
  wrapper.append(toggle, form);
  return wrapper;
}

async function applySuggestion(card, suggestion) {
  say(`Applying “${suggestion.label}”…`);
  const body = {
    serviceId: state.serviceId,
    card,
    suggestion,
    draftOrders: state.draftOrder ? [`MedicationRequest/${state.draftOrder.id}`] : [],
  };
  try {
    const result = await api("POST", "/api/apply", body);
    logExchange(`Suggestion applied: FHIR transaction + feedback (accepted) → ${result.feedback.status}`, body, result);
    await loadRecord();
    // The order session now holds what the suggestion created; fire the hook again for it.
    await fire(state.hook, result.newDraft || state.draftOrder);
    say(`Applied “${suggestion.label}”; ${state.hook} fired again.`);
  } catch (error) {
    say(`Applying the suggestion failed: ${error.message}`, true);
  }
}

async function openSmartLink(link) {
  try {
    const body = { patientId: currentPatient(), link };
    const result = await api("POST", "/api/launch", body);
    logExchange("SMART launch registered", body, result);
    window.open(result.url, "_blank");
  } catch (error) {
    say(`SMART launch failed: ${error.message}`, true);
  }
}

async function start() {
  const data = await api("GET", "/api/patients");
  const patientSelect = document.getElementById("patient");
  for (const patient of data.patients) {
    state.patients.set(patient.id, patient);
    patientSelect.append(el("option", { value: patient.id, text: `${patient.label} — ${patient.description}` }));
  }
  const drugSelect = document.getElementById("drug");
  for (const drug of data.drugs) drugSelect.append(el("option", { value: drug.id, text: drug.label }));
  patientSelect.addEventListener("change", choosePatient);
  document.getElementById("order-form").addEventListener("submit", (event) => {
    event.preventDefault();
    fire("order-select");
  });
  document.getElementById("sign-order").addEventListener("click", () => fire("order-sign", state.draftOrder));
  choosePatient();
}

document.addEventListener("DOMContentLoaded", () => start().catch((error) => say(`Cannot start: ${error.message}`, true)));
