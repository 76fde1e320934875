/*
 * accept-test.js: a local stand-in for Authorize.Net's Accept.js (v1), for the embedded default and browser tests.
 *
 * Same contract as the real library: Accept.dispatchData({authData: {clientKey, apiLoginID},
 * cardData: {cardNumber, month, year, cardCode?, zip?, fullName?}}, responseHandler), the same validation and
 * E_WC_* codes, and an answer delivered asynchronously. No network: the nonce is "local-accept." followed by
 * base64url(JSON {last4, brand, exp, zip, cvv, n}), which only the built-in test gateway and
 * tools/anet_loopback.py accept (once). It never holds the full card number; the card code is in it only so the
 * sandbox can apply its 900-904 CVV rules, which is acceptable for a test double and nothing else.
 */
(function () {
  "use strict";

  const NONCE_PREFIX = "local-accept.";
  const DATA_DESCRIPTOR = "COMMON.ACCEPT.INAPP.PAYMENT";

  // Accept.js's own wording for each code.
  const MESSAGES = {
    E_WC_04: "Please provide mandatory field to library.",
    E_WC_05: "Please provide valid credit card number.",
    E_WC_06: "Please provide valid expiration month.",
    E_WC_07: "Please provide valid expiration year.",
    E_WC_08: "Expiration date must be in the future.",
    E_WC_10: "Please provide valid apiloginid.",
    E_WC_15: "Please provide valid CVV.",
    E_WC_16: "Please provide valid Zip code.",
    E_WC_17: "Please provide valid card holder name.",
    E_WC_18: "Client key is required.",
  };

  // Authorize.Net's accountType names; JCB's 3088 range is tested before Diners' 30x (as in sandbox.py).
  const BRANDS = [
    ["AmericanExpress", /^3[47]/],
    ["JCB", /^(30(8[89]|9[0-4])|35)/],
    ["DinersClub", /^3(0[0-5]|095|[689])/],
    ["Discover", /^6(011|5|4[4-9]|22)/],
    ["MasterCard", /^(5[1-5]|2(22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720))/],
    ["Visa", /^4/],
  ];

  function text(value) {
    return value === undefined || value === null ? "" : String(value);
  }

  function luhnOk(number) {
    let sum = 0;
    for (let i = 0; i < number.length; i += 1) {
      let digit = Number(number[number.length - 1 - i]);
      if (i % 2 === 1) {
        digit *= 2;
        if (digit > 9) digit -= 9;
      }
      sum += digit;
    }
    return sum % 10 === 0;
  }

  function brandOf(number) {
    const match = BRANDS.find(([, prefix]) => prefix.test(number));
    return match ? match[0] : "";
  }

  /* Optional fields are checked only when given, as Accept.js does. */
  function checkOptional(cardData, field, pattern, code, errors) {
    const value = text(cardData[field]);
    if (value.length > 0 && !pattern.test(value)) errors.push(code);
  }

  /* The error codes Accept.js would report for this input, in its order; the card fields come back normalized. */
  function validate(secureData) {
    const errors = [];
    const authData = secureData && secureData.authData;
    const cardData = secureData && secureData.cardData;
    if (!authData || !cardData) return { errors: ["E_WC_04"] };

    const number = text(cardData.cardNumber).replace(/[. ,:-]+/g, "");
    if (!/^\d{13,16}$/.test(number) || !luhnOk(number)) errors.push("E_WC_05");

    let month = text(cardData.month);
    if (month.length === 1) month = "0" + month;
    const monthOk = /^(0[1-9]|1[0-2])$/.test(month);
    let year = text(cardData.year);
    if (!/^\d{2}(\d{2})?$/.test(year)) {
      errors.push("E_WC_07");
    } else {
      if (year.length === 2) year = "20" + year;
      // Valid through the last millisecond of the expiry month, like the real library.
      if (monthOk && new Date(Number(year), Number(month), 0, 23, 59, 59, 999) < new Date()) errors.push("E_WC_08");
    }
    if (!monthOk) errors.push("E_WC_06");

    const login = text(authData.apiLoginID);
    if (login.length === 0 || login.length >= 255) errors.push("E_WC_10");
    if (text(authData.clientKey).length === 0) errors.push("E_WC_18");

    checkOptional(cardData, "cardCode", /^\d{3,4}$/, "E_WC_15", errors);
    checkOptional(cardData, "zip", /^.{1,20}$/, "E_WC_16", errors);
    checkOptional(cardData, "fullName", /^.{1,64}$/, "E_WC_17", errors);
    return { errors, number, month, year, cardCode: text(cardData.cardCode), zip: text(cardData.zip) };
  }

  function base64url(value) {
    const bytes = new TextEncoder().encode(value);
    let binary = "";
    bytes.forEach((byte) => {
      binary += String.fromCharCode(byte);
    });
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function randomId() {
    const bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  function makeNonce(card) {
    const claims = {
      last4: card.number.slice(-4),
      brand: brandOf(card.number),
      exp: card.year + "-" + card.month,
      zip: card.zip,
      cvv: card.cardCode,
      n: randomId(),
    };
    return NONCE_PREFIX + base64url(JSON.stringify(claims));
  }

  function dispatchData(secureData, responseHandler) {
    // Accept.js also takes the name of a global function instead of the function itself.
    const handler = typeof responseHandler === "string" ? window[responseHandler] : responseHandler;
    if (typeof handler !== "function") throw new TypeError("Accept.dispatchData needs a response handler");
    const card = validate(secureData);
    let response;
    if (card.errors.length > 0) {
      response = {
        messages: { resultCode: "Error", message: card.errors.map((code) => ({ code, text: MESSAGES[code] })) },
      };
    } else {
      response = {
        opaqueData: { dataDescriptor: DATA_DESCRIPTOR, dataValue: makeNonce(card) },
        messages: { resultCode: "Ok", message: [{ code: "I_WC_01", text: "Successful." }] },
      };
    }
    // The real library answers after a network round trip; callers must not rely on a synchronous call.
    window.setTimeout(() => handler(response), 0);
  }

  window.Accept = { dispatchData };
})();
