// The forms' own logic: what each sends to the API, what it checks before
// sending, and where the API's field errors are shown.
import { describe, expect, it } from "vitest";
import { ApiError } from "../api/client";
import type { DestinationField } from "../api/schemas";
import { showApiError } from "../ui/forms";
import { backfillRequest, BackfillForm } from "./Backfills";
import { configSchema, initialValues, toRequest } from "./destinationForm";
import { sourceRequest, SourceForm } from "./Sources";

const field = (f: Partial<DestinationField> & { name: string }): DestinationField => ({
  kind: "string",
  required: false,
  secret: false,
  default: null,
  one_of: [],
  description: "",
  ...f,
});

const pgFields = [
  field({ name: "host", required: true }),
  field({ name: "port", kind: "port", default: 5432 }),
  field({ name: "password", secret: true }),
  field({ name: "sslmode", default: "prefer", one_of: ["disable", "prefer"] }),
  field({ name: "max_hold", kind: "duration" }),
  field({ name: "soft_delete", kind: "bool", default: false }),
  field({ name: "batch_size", kind: "batch_size" }),
];

describe("source form", () => {
  const v = { name: "shop", host: "db", port: 5432, database: "shop", user: "u", password: "", publication: "", slot: "", sslmode: "prefer" as const };
  it("sends no password on edit when left empty (keeps the stored one)", () => {
    expect(sourceRequest(v, true)).not.toHaveProperty("password");
    expect(sourceRequest(v, false).password).toBeNull();
    expect(sourceRequest({ ...v, password: "pw" }, true).password).toBe("pw");
  });
  it("keeps the client key write-only and sends TLS settings so they can be cleared", () => {
    const tls = { ...v, sslrootcert: "-----BEGIN CERTIFICATE-----", require_auth: "scram-sha-256", sslkey: "" };
    const created = sourceRequest(tls, false);
    expect(created.sslrootcert).toBe("-----BEGIN CERTIFICATE-----");
    expect(created.require_auth).toBe("scram-sha-256");
    expect(created).not.toHaveProperty("sslcert");
    expect(created).not.toHaveProperty("sslkey");
    const edited = sourceRequest({ ...tls, sslrootcert: "" }, true);
    expect(edited.sslrootcert).toBe("");
    expect(edited).not.toHaveProperty("sslkey");
    expect(sourceRequest({ ...tls, sslkey: "-----BEGIN PRIVATE KEY-----" }, true).sslkey).toBe("-----BEGIN PRIVATE KEY-----");
  });
  it("leaves empty publication and slot to the API's defaults", () => {
    const r = sourceRequest(v, false);
    expect(r).not.toHaveProperty("publication");
    expect(r).not.toHaveProperty("slot");
  });
  it("sends partitions when the field holds a number", () => {
    expect(sourceRequest({ ...v, partitions: 4 }, false).partitions).toBe(4);
    expect(sourceRequest({ ...v, partitions: Number.NaN }, true)).not.toHaveProperty("partitions");
  });
  it.each([
    [{ port: 70000 }, "port"],
    [{ name: "" }, "name"],
    [{ slot: "Bad-Slot" }, "slot"],
    [{ partitions: 0 }, "partitions"],
    [{ partitions: 65 }, "partitions"],
  ])("refuses %o at %s", (patch, path) => {
    const res = SourceForm.safeParse({ ...v, ...patch });
    expect(res.success).toBe(false);
    expect(res.error!.issues[0].path.join(".")).toBe(path);
  });
});

describe("destination form from the type's fields", () => {
  it("fills defaults, never secrets", () => {
    const init = initialValues(pgFields, "postgres", {
      id: 1,
      name: "wh",
      type: "postgres",
      config: { host: "h", port: 6543 },
      password_set: true,
      created_at: "",
      updated_at: "",
    });
    expect(init.config).toEqual({ host: "h", port: "6543", password: "", sslmode: "prefer", max_hold: "", soft_delete: false, batch_size: "" });
  });
  it("sends ports as numbers and leaves empty fields out", () => {
    const body = toRequest({ name: "wh", type: "postgres", config: { host: "h", port: "5433", password: "", sslmode: "", max_hold: "2s", soft_delete: true, batch_size: "500" } }, pgFields);
    expect(body).toEqual({ name: "wh", type: "postgres", config: { host: "h", port: 5433, max_hold: "2s", soft_delete: true, batch_size: 500 } });
  });
  it.each([
    [{ host: "" }, "config.host is required"],
    [{ port: "0" }, "config.port must be from 1 to 65535"],
    [{ max_hold: "2 seconds" }, "config.max_hold must be a duration"],
    [{ sslmode: "sometimes" }, "config.sslmode must be one of disable, prefer"],
    [{ batch_size: "200000" }, "config.batch_size must be from 1 to 100000"],
  ])("checks %o before asking the API", (patch, msg) => {
    const res = configSchema(pgFields, new Set()).safeParse({ name: "wh", type: "postgres", config: { host: "h", port: "", sslmode: "", max_hold: "", ...patch } });
    expect(res.success).toBe(false);
    expect(res.error!.issues[0].message).toContain(msg);
  });
  it("does not ask again for a required secret already stored", () => {
    const fields = [field({ name: "private_key", secret: true, required: true })];
    expect(configSchema(fields, new Set()).safeParse({ name: "s", type: "snowflake", config: { private_key: "" } }).success).toBe(false);
    expect(configSchema(fields, new Set(["private_key"])).safeParse({ name: "s", type: "snowflake", config: { private_key: "" } }).success).toBe(true);
  });
});

describe("backfill form", () => {
  it("turns filters into the API's shape", () => {
    const body = backfillRequest({
      table: "public.orders",
      destination_ids: [],
      batch_size: "500",
      filters: [
        { column: "id", op: "<=", value: "10" },
        { column: "status", op: "in", value: "new, paid" },
        { column: "deleted_at", op: "is null", value: "ignored" },
      ],
    });
    expect(body).toEqual({
      table: "public.orders",
      batch_size: 500,
      filters: [
        { column: "id", op: "<=", value: "10" },
        { column: "status", op: "in", value: ["new", "paid"] },
        { column: "deleted_at", op: "is null" },
      ],
    });
  });
  it("refuses a sixth filter", () => {
    const f = { column: "id", op: "=" as const, value: "1" };
    const res = BackfillForm.safeParse({ table: "t", destination_ids: [], batch_size: "", filters: [f, f, f, f, f, f] });
    expect(res.success).toBe(false);
    expect(res.error!.issues[0].message).toBe("at most 5 filters");
  });
});

describe("the API's field errors", () => {
  type Call = [string, { message: string }];
  const fakeForm = () => {
    const calls: Call[] = [];
    return { calls, form: { setError: (name: string, err: { message: string }) => calls.push([name, err]) } as never };
  };
  it.each([
    [new ApiError(422, "database \"x\" does not exist", "database"), ["name", "database"], "database"],
    [new ApiError(422, "config.host: no such host", "config.host"), ["name", "config.host"], "config.host"],
    [new ApiError(422, "filters[2]: no column nope", "filters[2]"), ["table", "filters"], "filters"],
    [new ApiError(409, "name is used", "name"), ["host"], "root.server"],
    [new ApiError(500, "internal error"), ["name"], "root.server"],
  ])("%s is shown at %s", (err, fields, at) => {
    const { calls, form } = fakeForm();
    showApiError(form, err, fields);
    expect(calls).toHaveLength(1);
    expect(calls[0][0]).toBe(at);
    expect(calls[0][1].message).toBe(err.message);
  });
});

describe("query result as CSV", () => {
  it("quotes what needs quoting and writes NULL as an empty field", async () => {
    const { toCSV } = await import("./Query");
    expect(toCSV({ columns: ["id", "note"], rows: [["1", 'say "hi", then\nleave'], ["2", null]] })).toBe('id,note\r\n1,"say ""hi"", then\nleave"\r\n2,\r\n');
  });
});
