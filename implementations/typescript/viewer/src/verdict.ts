/** The verification result, as `m2kt verify` reports it: verdict, id, k of n, errors, signers. */
import type { Verification } from "../../src/index.js";
import { h, mount } from "./dom.js";

export function renderVerdict(result: Verification): void {
  const target = mount(
    "verdict",
    h(
      "p",
      { class: "banner", "data-testid": "verdict-text" },
      result.valid ? "VALID" : "INVALID",
      h("span", {}, result.valid ? " — signatures, trust and policy check out" : " — see the problems below"),
    ),
    h(
      "dl",
      {},
      h("dt", {}, "packet id"),
      h("dd", { class: "mono", "data-testid": "packet-id" }, result.packet?.id ?? "(the packet did not decode)"),
      h("dt", {}, "trusted signers"),
      h("dd", { "data-testid": "counted" }, `${result.counted} counted of ${result.required} required`),
    ),
    result.errors.length > 0 &&
      h(
        "ol",
        { class: "errors", "data-testid": "errors" },
        ...result.errors.map((e) =>
          h(
            "li",
            { "data-code": e.code },
            h("code", {}, e.code),
            ": ",
            e.message,
            e.path !== undefined && h("span", { class: "path" }, ` at ${e.path}`),
          ),
        ),
      ),
    result.signers.length > 0 && signerTable(result),
  );
  target.hidden = false;
  target.dataset["valid"] = String(result.valid);
  target.className = result.valid ? "valid" : "invalid";
}

function signerTable(result: Verification): HTMLElement {
  return h(
    "table",
    { class: "signers" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "#"),
        h("th", {}, "signer"),
        h("th", {}, "key id"),
        h("th", {}, "signed"),
        h("th", {}, "counted"),
        h("th", {}, "checks"),
      ),
    ),
    h(
      "tbody",
      {},
      ...result.signers.map((s) =>
        h(
          "tr",
          { "data-kid": s.kid, "data-trusted": String(s.trusted), "data-counted": String(s.counted) },
          h("td", {}, s.index),
          h("td", {}, s.name ?? (s.trusted ? "" : "untrusted")),
          h("td", { class: "mono" }, s.kid === undefined ? "?" : `${s.kid.slice(0, 16)}…`),
          h("td", {}, s.signingTime ?? ""),
          h("td", {}, s.counted ? "yes" : "no"),
          h(
            "td",
            {},
            ...s.checks.map((c) =>
              h(
                "span",
                { class: c.passed ? "pass" : "fail", title: c.message },
                c.passed ? `✓ ${c.check} ` : `✗ ${c.check} (${c.code ?? ""}) `,
              ),
            ),
          ),
        ),
      ),
    ),
  );
}
