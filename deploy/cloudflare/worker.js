// ccauthz in front of an origin, as a Cloudflare Worker: every request is
// checked with ccauthz's JSON API (POST /v1/check) before it is forwarded.
// A denial is answered with the decision's status, JSON body and response
// headers; an allowed request goes to the origin with ccauthz's upstream
// headers (client-sent x-ccauthz-* headers are dropped first). When ccauthz
// is unreachable, slow (CCAUTHZ_TIMEOUT_MS) or answers something that is not
// a decision, the request fails closed with 503 and never reaches the origin.
//
// Bindings (wrangler.toml): CCAUTHZ_URL (ccauthz's HTTP check listener, e.g.
// https://ccauthz.internal.example.com) or a CCAUTHZ service binding;
// CCAUTHZ_BACKEND (the backend name in ccauthz's config); CCAUTHZ_TIMEOUT_MS
// (default 250); optionally an UPSTREAM service binding instead of the
// request's own origin. Checked end to end in workerd by
// deploy/cloudflare_e2e_test.go.

const UNAVAILABLE = JSON.stringify({ error: "Authorization service unavailable" });

function unavailable() {
  return new Response(UNAVAILABLE, { status: 503, headers: { "content-type": "application/json" } });
}

// isDecision reports whether d has the fields the Worker acts on.
function isDecision(d) {
  return d !== null && typeof d === "object" && typeof d.enforced_allow === "boolean" &&
    typeof d.decision_id === "string" && Number.isInteger(d.status) &&
    d.headers !== null && typeof d.headers === "object" &&
    Array.isArray(d.headers_to_remove) &&
    d.response_headers !== null && typeof d.response_headers === "object";
}

async function check(request, env) {
  const url = new URL(request.url);
  const headers = {};
  for (const [name, value] of request.headers) headers[name] = value;
  const body = JSON.stringify({
    backend: env.CCAUTHZ_BACKEND,
    method: request.method,
    path: url.pathname + url.search,
    host: url.host,
    headers,
  });
  const timeout = Number(env.CCAUTHZ_TIMEOUT_MS || 250);
  const signal = AbortSignal.timeout(timeout);
  const target = env.CCAUTHZ ? "http://ccauthz/v1/check" : new URL("/v1/check", env.CCAUTHZ_URL).toString();
  const fetcher = env.CCAUTHZ ? env.CCAUTHZ : globalThis;
  const resp = await fetcher.fetch(target, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    signal,
  });
  // 400/413: ccauthz could not read the check (the client's request is
  // malformed); pass its error on. Anything else but 200 is a fault.
  if (resp.status === 400 || resp.status === 413) {
    return { malformed: new Response(await resp.text(), { status: resp.status, headers: { "content-type": "application/json" } }) };
  }
  if (resp.status !== 200) throw new Error(`ccauthz answered ${resp.status}`);
  return { decision: await resp.json() };
}

export default {
  async fetch(request, env) {
    let result;
    try {
      result = await check(request, env);
    } catch (err) {
      return unavailable();
    }
    if (result.malformed) return result.malformed;
    const d = result.decision;
    if (!isDecision(d)) return unavailable();

    if (!d.enforced_allow) {
      const out = new Headers(d.response_headers);
      out.set("content-type", "application/json");
      out.set("x-ccauthz-decision-id", d.decision_id);
      return new Response(JSON.stringify(d.body ?? {}), { status: d.status, headers: out });
    }

    const up = new Headers(request.headers);
    for (const name of [...up.keys()]) {
      if (name.startsWith("x-ccauthz-")) up.delete(name);
    }
    for (const name of d.headers_to_remove) up.delete(name);
    for (const [name, value] of Object.entries(d.headers)) up.set(name, value);
    up.set("x-ccauthz-decision-id", d.decision_id);
    // Forward exactly the path ccauthz judged (its canonical form), never
    // the raw one: the origin must not resolve dot segments, "//" or
    // escapes into a route the policy did not judge (docs/request-path.md).
    if (typeof d.path !== "string" || !d.path.startsWith("/")) return unavailable();
    up.set("x-ccauthz-path", d.path);
    const target = new URL(request.url);
    target.pathname = d.path;
    const forward = new Request(target.toString(), new Request(request, { headers: up }));
    return env.UPSTREAM ? env.UPSTREAM.fetch(forward) : fetch(forward);
  },
};
