// The ranking page: drag and drop (pointer events) and keys 1..K, ties, skip and unsafe shortcuts.
// The form's selects (place-<response index>) stay the source of truth: without JavaScript they work alone.
(function () {
  "use strict";
  const rankForm = document.getElementById("rankform");
  const pairForm = document.getElementById("pairform");
  const skip = document.getElementById("skip");
  const unsafe = document.getElementById("unsafe");
  const typing = (el) => el.matches && el.matches("input, textarea, select, button, summary");

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "s" && skip) {
      skip.open = true;
      skip.querySelector("select").focus();
      event.preventDefault();
    } else if (event.key === "u" && unsafe) {
      unsafe.checked = !unsafe.checked;
      event.preventDefault();
    } else if (pairForm && (event.key === "1" || event.key === "2")) {
      document.getElementById("choose-" + event.key).click();
    } else if (pairForm && (event.key === "t" || event.key === "=")) {
      document.getElementById("choose-tie").click();
    } else if (rankForm && event.key === "Enter") {
      event.preventDefault();
      rankForm.requestSubmit();
    }
  });
  if (!rankForm) return;

  const list = document.getElementById("ranking");
  const k = Number(rankForm.dataset.k);
  // groups: cards best first; cards in one group share a place (a tie)
  let groups = [...list.querySelectorAll(".card")].map((card) => [card]);
  const groupOf = (card) => groups.findIndex((g) => g.includes(card));

  function sync(focus) {
    list.replaceChildren(...groups.flat());
    groups.forEach((group, place) => group.forEach((card, i) => {
      card.querySelector("select").value = String(place + 1);
      card.classList.toggle("tied", i > 0);
      card.querySelector(".tie").hidden = i === 0;
      const button = card.querySelector(".tiebutton");
      button.hidden = place === 0 && i === 0;  // the top card has nothing above to tie with
      button.textContent = i > 0 ? "untie" : "tie ↑";
    }));
    if (focus) focus.focus();
  }
  function detach(card) {
    const g = groupOf(card);
    groups[g] = groups[g].filter((c) => c !== card);
    if (!groups[g].length) groups.splice(g, 1);
  }
  function placeAt(card, index) {
    detach(card);
    groups.splice(Math.max(0, Math.min(index, groups.length)), 0, [card]);
    sync(card);
  }
  function move(card, step) {
    const g = groupOf(card);
    const alone = groups[g].length === 1;
    placeAt(card, step < 0 ? (alone ? g - 1 : g) : g + 1);
  }
  function toggleTie(card) {
    const g = groupOf(card);
    if (groups[g].indexOf(card) > 0) {
      detach(card);
      groups.splice(g + 1, 0, [card]);
    } else if (g > 0) {
      detach(card);
      groups[g - 1].push(card);
    }
    sync(card);
  }

  list.addEventListener("keydown", (event) => {
    const card = event.target.closest(".card");
    if (!card || event.target !== card || event.ctrlKey || event.metaKey) return;
    const cards = groups.flat();
    const at = cards.indexOf(card);
    if (/^[1-9]$/.test(event.key) && Number(event.key) <= k) {
      placeAt(card, Number(event.key) - 1);
    } else if (event.key === "t" || event.key === "=") {
      toggleTie(card);
    } else if (event.key === "ArrowUp" || event.key === "ArrowDown") {
      const step = event.key === "ArrowUp" ? -1 : 1;
      if (event.shiftKey || event.altKey) move(card, step);
      else if (cards[at + step]) cards[at + step].focus();
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  });
  list.addEventListener("click", (event) => {
    const button = event.target.closest(".tiebutton");
    if (button) toggleTie(button.closest(".card"));
  });
  list.addEventListener("change", (event) => {
    const card = event.target.closest(".card");
    if (card) placeAt(card, Number(event.target.value) - 1);
  });

  // drag and drop by the handle, with pointer events (mouse, pen and touch alike)
  let dragged = null;
  list.addEventListener("pointerdown", (event) => {
    const handle = event.target.closest(".handle");
    if (!handle || event.button !== 0) return;
    dragged = handle.closest(".card");
    dragged.classList.add("dragging");
    handle.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  list.addEventListener("pointermove", (event) => {
    if (!dragged) return;
    const others = [...list.querySelectorAll(".card")].filter((c) => c !== dragged);
    const before = others.find((c) => {
      const box = c.getBoundingClientRect();
      return event.clientY < box.top + box.height / 2;
    });
    list.insertBefore(dragged, before || null);
  });
  function drop() {
    if (!dragged) return;
    const card = dragged;
    dragged = null;
    card.classList.remove("dragging");
    const order = [...list.querySelectorAll(".card")];
    detach(card);
    const above = groups.filter((g) => order.indexOf(g[0]) < order.indexOf(card)).length;
    groups.splice(above, 0, [card]);
    sync(card);
  }
  list.addEventListener("pointerup", drop);
  list.addEventListener("pointercancel", drop);
  // keyboard users start on the first card: arrows move between cards, digits place them
  sync(document.activeElement === document.body ? groups[0][0] : null);
})();
