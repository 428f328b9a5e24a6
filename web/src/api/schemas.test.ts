// The zod schemas against contracts/openapi.yaml: each schema's properties,
// required fields and enums must be the OpenAPI component's.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";
import * as S from "./schemas";

type JSONSchema = {
  type?: string | string[];
  properties?: Record<string, JSONSchema>;
  required?: string[];
  enum?: unknown[];
  allOf?: JSONSchema[];
  $ref?: string;
  items?: JSONSchema;
  anyOf?: JSONSchema[];
};

// vitest runs in web/.
const spec = parse(readFileSync(resolve(process.cwd(), "../contracts/openapi.yaml"), "utf8"));
const components: Record<string, JSONSchema> = spec.components.schemas;

// flatten merges allOf parts (and their $refs) into one object schema.
function flatten(s: JSONSchema): { properties: Record<string, JSONSchema>; required: Set<string> } {
  const out = { properties: { ...(s.properties ?? {}) }, required: new Set(s.required ?? []) };
  for (const part of s.allOf ?? []) {
    const p = flatten(part.$ref ? components[part.$ref.split("/").pop()!] : part);
    Object.assign(out.properties, p.properties);
    p.required.forEach((r) => out.required.add(r));
  }
  return out;
}

function enumOf(s: JSONSchema | undefined): string[] | undefined {
  if (!s) return undefined;
  if (s.enum) return s.enum.filter((v) => v !== null).map(String).sort();
  for (const alt of s.anyOf ?? []) {
    const e = enumOf(alt);
    if (e) return e;
  }
  return undefined;
}

const pairs: [string, z.ZodType][] = [
  ["Error", S.ErrorBody],
  ["Health", S.Health],
  ["WALSample", S.WALSample],
  ["WALSamples", S.WALSamples],
  ["SourceRequest", S.SourceRequest],
  ["Source", S.Source],
  ["DestinationRequest", S.DestinationRequest],
  ["Destination", S.Destination],
  ["DestinationType", S.DestinationType],
  ["DestinationField", S.DestinationField],
  ["DestinationCheck", S.DestinationCheck],
  ["SourceTable", S.SourceTable],
  ["PipelineRequest", S.PipelineRequest],
  ["Pipeline", S.Pipeline],
  ["PipelineDetail", S.PipelineDetail],
  ["DestinationStatus", S.DestinationStatus],
  ["PipelineDestinationStatus", S.PipelineDestinationStatus],
  ["DLQTable", S.DLQTable],
  ["DLQSummary", S.DLQSummary],
  ["PipelineDLQ", S.PipelineDLQ],
  ["DLQPosition", S.DLQPosition],
  ["DLQEntry", S.DLQEntry],
  ["DLQEntryPage", S.DLQEntryPage],
  ["RecoverRequest", S.RecoverRequest],
  ["Recovery", S.Recovery],
  ["DiscardRequest", S.DiscardRequest],
  ["DiscardResult", S.DiscardResult],
  ["BackfillFilter", S.BackfillFilter],
  ["BackfillRequest", S.BackfillRequest],
  ["Backfill", S.Backfill],
  ["RefreshResult", S.RefreshResult],
  ["WhoAmI", S.Whoami],
  ["QueryRequest", S.QueryRequest],
  ["QueryResult", S.QueryResult],
  ["TailChange", S.TailChange],
  ["TailSkipped", S.TailSkipped],
  ["AuditEntry", S.AuditEntry],
];

// Schemas of routes the console does not call: GET /health is for probes;
// tokens are managed with rosetta token and the API, verify runs from
// rosetta verify and the API, the live destination check from rosetta
// check-destination and the API.
const notRead = new Set([
  "Liveness",
  "TokenRequest",
  "Token",
  "VerifyRequest",
  "Verification",
  "VerifyResult",
  "VerifyKey",
  "LiveCheck",
  "LiveCheckResult",
]);

describe("zod schemas match contracts/openapi.yaml", () => {
  it.each(pairs)("%s", (name, schema) => {
    const api = components[name];
    expect(api, `openapi.yaml has no schema ${name}`).toBeDefined();
    const want = flatten(api);
    const got = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as JSONSchema;
    expect(Object.keys(got.properties ?? {}).sort(), "properties").toEqual(Object.keys(want.properties).sort());
    expect([...(got.required ?? [])].sort(), "required").toEqual([...want.required].sort());
    for (const [prop, ps] of Object.entries(want.properties)) {
      const e = enumOf(ps);
      if (e) expect(enumOf(got.properties![prop]), `${prop} enum`).toEqual(e);
    }
  });

  it("every schema the console reads is covered", () => {
    const covered = new Set(pairs.map(([n]) => n));
    const missing = Object.keys(components).filter((n) => !covered.has(n) && !notRead.has(n) && !/Config$|^Page$/.test(n));
    expect(missing).toEqual([]);
  });
});
