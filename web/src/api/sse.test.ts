import { describe, expect, it } from "vitest";
import { SSEParser } from "./sse";

describe("SSEParser", () => {
  it("reads events split across chunks, skips comments", () => {
    const p = new SSEParser();
    const text = ': live tail of pipeline 1\n\nevent: change\nid: 7\ndata: {"seq":7}\n\n: heartbeat\n\nevent: skipped\r\ndata: {"skipped":3}\r\n\r\n';
    const got = [];
    for (let i = 0; i < text.length; i += 5) got.push(...p.push(text.slice(i, i + 5)));
    expect(got).toEqual([
      { event: "change", id: "7", data: '{"seq":7}' },
      { event: "skipped", id: "7", data: '{"skipped":3}' },
    ]);
  });

  it("joins data lines and names unnamed events message", () => {
    expect(new SSEParser().push("data: a\ndata: b\n\n")).toEqual([{ event: "message", id: undefined, data: "a\nb" }]);
  });
});
