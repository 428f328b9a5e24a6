import { describe, expect, it } from "vitest";
import { auditDiff } from "./auditDiff";

describe("auditDiff", () => {
  it("lists changed fields, nested as paths, without updated_at", () => {
    expect(
      auditDiff({ name: "a", config: { host: "h1", port: 5432 }, updated_at: "t1" }, { name: "a", config: { host: "h2", port: 5432 }, updated_at: "t2" }),
    ).toEqual([{ field: "config.host", before: "h1", after: "h2" }]);
  });
  it("shows a create's and a delete's fields against nothing", () => {
    expect(auditDiff(null, { id: 3, tables: ["public.a"] })).toEqual([
      { field: "id", before: "–", after: "3" },
      { field: "tables", before: "–", after: '["public.a"]' },
    ]);
    expect(auditDiff({ id: 3 }, null)).toEqual([{ field: "id", before: "3", after: "–" }]);
  });
  it("never shows a secret's value", () => {
    expect(auditDiff({ config: { password: "x" } }, { config: { password: "y" } })).toEqual([{ field: "config.password", before: "(hidden)", after: "(hidden)" }]);
  });
});
