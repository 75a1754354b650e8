import { useState } from "preact/hooks";
import { api, enc, qs } from "../api.js";
import { ErrorBox, Link, fmtTime, navigate, useApp, useLoad, useT } from "../ui.jsx";

export function Conversations({ sub }) {
  const t = useT();
  const { session } = useApp();
  // A user key reads its own conversations only: no key to filter by.
  const mine = session && session.role === "user";
  const [key, setKey] = useState("");
  const [applied, setApplied] = useState("");
  const [data, error, reload] = useLoad(
    () => api("/api/conversations" + qs({ key: applied, limit: 200 })),
    [applied],
  );
  if (sub) return <Replay id={sub} />;
  const items = (data && data.conversations) || [];
  return (
    <section>
      <h1>{t("nav.conversations")}</h1>
      <form
        class="row wrap toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          // the same filter again still means "show me what is new"
          if (key === applied) reload();
          else setApplied(key);
        }}
      >
        {!mine && (
          <>
            <label for="conv-key">{t("col.key")}</label>
            <input id="conv-key" value={key} onInput={(e) => setKey(e.currentTarget.value)} />
          </>
        )}
        <button type="submit">{t(mine ? "reload" : "filter")}</button>
      </form>
      <ErrorBox error={error} />
      {data && data.partial && <p class="muted">{t("conv.partial")}</p>}
      <div class="table-wrap">
        <table id="conversations-table">
          <thead>
            <tr>
              <th>{t("col.time")}</th>
              <th>{t("col.key")}</th>
              <th>{t("col.model")}</th>
              <th>{t("col.status")}</th>
              <th>{t("conv.preview")}</th>
            </tr>
          </thead>
          <tbody>
            {items.map((c) => (
              <tr key={c.request_id}>
                <td>
                  <Link href={"/ui/conversations/" + enc(c.request_id)} data-conversation={c.request_id}>
                    {fmtTime(c.time)}
                  </Link>
                </td>
                <td>{c.key || "–"}</td>
                <td>{c.model}</td>
                <td>{c.status}</td>
                <td class="preview">{c.preview || c.error || ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {items.length === 0 && !error && <p class="muted">{t("conv.none")}</p>}
      </div>
    </section>
  );
}

// Arguments and results as indented JSON, also when they come as a JSON string.
const str = (v) => {
  if (typeof v === "string") {
    try {
      const parsed = JSON.parse(v);
      if (parsed && typeof parsed === "object") return JSON.stringify(parsed, null, 2);
    } catch {
      // plain text
    }
    return v;
  }
  return JSON.stringify(v, null, 2);
};

// One content part of any dialect (OpenAI, Anthropic, Responses, Gemini).
function Part({ p }) {
  const t = useT();
  if (typeof p === "string") return <div class="text">{p}</div>;
  if (!p || typeof p !== "object") return null;
  const type = p.type || "";
  if (p.text !== undefined && (type === "" || type.endsWith("text"))) {
    return p.thought ? (
      <details class="reasoning">
        <summary>{t("conv.reasoning")}</summary>
        <div class="text">{p.text}</div>
      </details>
    ) : (
      <div class="text">{p.text}</div>
    );
  }
  if (type === "thinking" || type === "reasoning" || type === "redacted_thinking") {
    const text = p.thinking || (Array.isArray(p.summary) ? p.summary.map((s) => s.text).join("\n") : "") || p.data || "";
    return (
      <details class="reasoning">
        <summary>{t("conv.reasoning")}</summary>
        <div class="text">{text}</div>
      </details>
    );
  }
  if (type === "tool_use" || type === "function_call" || p.functionCall) {
    const name = p.name || (p.functionCall && p.functionCall.name);
    const args = p.input ?? p.arguments ?? (p.functionCall && p.functionCall.args);
    return (
      <details class="tool-call" open>
        <summary>
          {t("conv.tool_call")}: <code>{name}</code>
        </summary>
        <pre>{str(args)}</pre>
      </details>
    );
  }
  if (type === "tool_result" || type === "function_call_output" || p.functionResponse) {
    const out = p.content ?? p.output ?? (p.functionResponse && p.functionResponse.response);
    return (
      <details class="tool-result">
        <summary>
          {t("conv.tool_result")} <code>{p.tool_use_id || p.call_id || (p.functionResponse && p.functionResponse.name) || ""}</code>
        </summary>
        {Array.isArray(out) ? out.map((x, i) => <Part key={i} p={x} />) : <pre>{str(out)}</pre>}
      </details>
    );
  }
  if (type === "message" && p.content !== undefined) return <Message m={p} />;
  return <pre class="raw">{str(p)}</pre>;
}

function Message({ m }) {
  const t = useT();
  const role = m.role || (m.type === "function_call_output" ? "tool" : m.type) || "?";
  let body;
  if (m.type === "function_call" || m.type === "function_call_output") body = <Part p={m} />;
  else if (typeof m.content === "string") body = <div class="text">{m.content}</div>;
  else if (Array.isArray(m.content)) body = m.content.map((p, i) => <Part key={i} p={p} />);
  else if (Array.isArray(m.parts)) body = m.parts.map((p, i) => <Part key={i} p={p} />);
  else body = null;
  const calls = Array.isArray(m.tool_calls) ? m.tool_calls : [];
  return (
    <details class={"msg role-" + role} open>
      <summary>
        {t("role_msg." + role, null, role)}
        {m.tool_call_id ? <code> {m.tool_call_id}</code> : null}
      </summary>
      {m.reasoning_content && (
        <details class="reasoning">
          <summary>{t("conv.reasoning")}</summary>
          <div class="text">{m.reasoning_content}</div>
        </details>
      )}
      {body}
      {calls.map((c, i) => (
        <details class="tool-call" open key={i}>
          <summary>
            {t("conv.tool_call")}: <code>{c.function ? c.function.name : c.name}</code>
          </summary>
          <pre>{str(c.function ? c.function.arguments : c.arguments)}</pre>
        </details>
      ))}
    </details>
  );
}

// The request's messages in one list, whatever the dialect.
export function messagesOf(req) {
  if (!req || typeof req !== "object") return [];
  const out = [];
  if (req.system) out.push({ role: "system", content: req.system });
  if (req.instructions) out.push({ role: "system", content: req.instructions });
  if (req.systemInstruction) out.push({ role: "system", parts: req.systemInstruction.parts || [] });
  if (Array.isArray(req.messages)) out.push(...req.messages);
  if (typeof req.input === "string") out.push({ role: "user", content: req.input });
  else if (Array.isArray(req.input)) out.push(...req.input);
  if (Array.isArray(req.contents)) out.push(...req.contents);
  return out;
}

function Replay({ id }) {
  const t = useT();
  const [c, error] = useLoad(() => api("/api/conversations/" + enc(id)), [id]);
  const resp = c && c.response;
  return (
    <section id="replay">
      <div class="row between">
        <h1>
          {t("conv.replay")} <span class="mono small">{id}</span>
        </h1>
        <div class="row">
          <Link href={"/ui/requests/" + enc(id)}>{t("conv.request")}</Link>
          <button onClick={() => navigate("/ui/conversations")}>{t("back")}</button>
        </div>
      </div>
      <ErrorBox error={error} />
      {c && (
        <>
          <p class="muted">
            {fmtTime(c.time)} · {c.key || "–"} · {c.model} → {c.provider}/{c.upstream_model} · {c.status} ·{" "}
            {Math.round(c.ms || 0)} ms
            {c.usage ? ` · ${t("col.input")} ${c.usage.input} · ${t("col.output")} ${c.usage.output}` : ""}
          </p>
          {c.error && <div class="error">{c.error}</div>}
          <div class="conversation">
            {messagesOf(c.request).map((m, i) => (
              <Message key={i} m={m} />
            ))}
            {resp && (
              <details class="msg role-assistant answer" open>
                <summary>{t("conv.answer")}{resp.finish ? ` (${resp.finish})` : ""}</summary>
                {resp.reasoning && (
                  <details class="reasoning">
                    <summary>{t("conv.reasoning")}</summary>
                    <div class="text">{resp.reasoning}</div>
                  </details>
                )}
                {resp.text && <div class="text">{resp.text}</div>}
                {(resp.tool_calls || []).map((tc, i) => (
                  <details class="tool-call" open key={i}>
                    <summary>
                      {t("conv.tool_call")}: <code>{tc.name}</code>
                    </summary>
                    <pre>{str(tc.arguments)}</pre>
                  </details>
                ))}
                {resp.undecodable && <pre class="raw">{resp.undecodable}</pre>}
                {resp.stream_error && <div class="error">{resp.stream_error}</div>}
              </details>
            )}
          </div>
          <details>
            <summary>{t("conv.raw")}</summary>
            <pre class="raw">{JSON.stringify(c.request, null, 2)}</pre>
          </details>
        </>
      )}
    </section>
  );
}
