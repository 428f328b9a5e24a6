// Server-sent events read with fetch: the console sends its token in the
// Authorization header, which EventSource cannot do (docs/security.md), so
// it reads text/event-stream from a ReadableStream and parses it here.
import { authHeaders, buildUrl, errorFrom } from "./client";

export type SSEEvent = { event: string; id?: string; data: string };

// SSEParser turns chunks of a text/event-stream into events (the WHATWG
// format: "field: value" lines, a blank line ends an event, ":" lines are
// comments). Chunks may split lines anywhere.
export class SSEParser {
  private buf = "";
  private event = "";
  private id: string | undefined;
  private data: string[] = [];

  push(chunk: string): SSEEvent[] {
    this.buf += chunk;
    const out: SSEEvent[] = [];
    let nl: number;
    while ((nl = this.buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + (this.buf.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (this.data.length) out.push({ event: this.event || "message", id: this.id, data: this.data.join("\n") });
        this.event = "";
        this.data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
      else if (field === "id") this.id = value;
    }
    return out;
  }
}

// streamEvents GETs path and calls onEvent for each event until the stream
// ends or signal aborts; onOpen once the API has accepted the request. A
// non-2xx answer throws the API's error.
export async function streamEvents(
  path: string,
  query: Record<string, string | undefined>,
  onEvent: (e: SSEEvent) => void,
  signal: AbortSignal,
  onOpen?: () => void,
) {
  const res = await fetch(buildUrl(path, query), { headers: { Accept: "text/event-stream", ...authHeaders() }, signal, cache: "no-store" });
  if (!res.ok) throw await errorFrom(res);
  if (!res.body) throw new Error("the browser gave no response stream");
  onOpen?.();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SSEParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const e of parser.push(value)) onEvent(e);
    }
  } finally {
    reader.releaseLock();
  }
}
