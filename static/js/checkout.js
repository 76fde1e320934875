// Checkout with Accept.js: the card is turned into a one-time token in the browser, and only the token
// (dataDescriptor, dataValue) is posted. The card inputs have no name, so they can never be submitted.
(function () {
  "use strict";

  function value(form, id) {
    var input = form.querySelector("#" + id);
    return input ? input.value.trim() : "";
  }

  function showErrors(form, messages) {
    var box = form.querySelector("#card-errors");
    if (box) { box.textContent = messages.join(" "); }
  }

  function setBusy(form, busy) {
    form.querySelectorAll("button[type=submit]").forEach(function (button) {
      button.disabled = busy;
      if (busy) { button.setAttribute("aria-busy", "true"); } else { button.removeAttribute("aria-busy"); }
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-accept-js]")) { return; }
    // Recalculating totals, or paying on the hosted payment page: no card to tokenize here.
    if (event.submitter && (event.submitter.name === "refresh" || event.submitter.name === "pay_with")) { return; }
    if (form.dataset.tokenized === "yes") { return; }
    event.preventDefault();
    if (form.dataset.busy === "yes") { return; } // a second click while the card is being tokenized
    if (typeof window.Accept === "undefined") {
      showErrors(form, ["The secure card form did not load. Please reload the page."]);
      return;
    }
    var expiry = value(form, "card-expiry").replace(/\s+/g, "").split("/");
    var month = (expiry[0] || "").padStart(2, "0");
    var year = expiry[1] || "";
    var secureData = {
      authData: { clientKey: form.dataset.clientKey, apiLoginID: form.dataset.apiLoginId },
      cardData: {
        cardNumber: value(form, "card-number").replace(/[\s-]+/g, ""),
        month: month,
        year: year.length === 2 ? "20" + year : year,
        cardCode: value(form, "card-code"),
        zip: value(form, "card-zip"),
        fullName: value(form, "id_full_name") || value(form, "full_name")
      }
    };
    form.dataset.busy = "yes";
    setBusy(form, true);
    showErrors(form, []);
    window.Accept.dispatchData(secureData, function (response) {
      if (!response || !response.messages || response.messages.resultCode === "Error") {
        var messages = (response && response.messages && response.messages.message || []).map(function (m) { return m.text; });
        showErrors(form, messages.length ? messages : ["Please check your card details."]);
        form.dataset.busy = "no";
        setBusy(form, false);
        return;
      }
      form.querySelector("[name=dataDescriptor]").value = response.opaqueData.dataDescriptor;
      form.querySelector("[name=dataValue]").value = response.opaqueData.dataValue;
      ["card-number", "card-expiry", "card-code"].forEach(function (id) {
        var input = form.querySelector("#" + id);
        if (input) { input.value = ""; }
      });
      form.dataset.tokenized = "yes";
      form.submit();
    });
  });
}());
