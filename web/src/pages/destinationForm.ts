// The destination form is built from the type's fields as the API lists
// them (GET /destination-types): this file turns those fields into a zod
// schema for the form and the form's values into a request body.
import { z } from "zod";
import type { Destination, DestinationField, DestinationRequest } from "../api/schemas";

export type DestinationFormValues = {
  name: string;
  type: DestinationRequest["type"];
  config: Record<string, string | boolean>;
};

const duration = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;

// configSchema checks what can be checked before asking the API: required
// fields, ports, durations and allowed values. A secret already stored is
// not required again when editing.
export function configSchema(fields: DestinationField[], storedSecrets: Set<string>) {
  const shape: Record<string, z.ZodType> = {};
  for (const f of fields) {
    if (f.kind === "bool") {
      shape[f.name] = z.boolean().optional();
      continue;
    }
    let s: z.ZodType = z.string();
    const label = `config.${f.name}`;
    if (f.kind === "port") {
      s = z.string().refine((v) => v === "" || (/^\d+$/.test(v) && +v >= 1 && +v <= 65535), `${label} must be from 1 to 65535`);
    } else if (f.kind === "batch_size") {
      s = z.string().refine((v) => v === "" || (/^\d+$/.test(v) && +v >= 1 && +v <= 100000), `${label} must be from 1 to 100000`);
    } else if (f.kind === "duration") {
      s = z.string().refine((v) => v === "" || duration.test(v), `${label} must be a duration such as 500ms or 2s`);
    } else if (f.one_of.length > 0) {
      s = z.string().refine((v) => v === "" || f.one_of.includes(v), `${label} must be one of ${f.one_of.join(", ")}`);
    }
    if (f.required && !(f.secret && storedSecrets.has(f.name))) {
      s = z.string().min(1, `${label} is required`).pipe(s as z.ZodString);
    }
    shape[f.name] = s.optional();
  }
  return z.object({
    name: z.string().trim().min(1, "name is required").max(200),
    type: z.enum(["postgres", "snowflake", "duckdb"]),
    config: z.object(shape),
  });
}

// initialValues fills the form from a stored destination (secrets stay
// empty: they are write-only) or from the fields' defaults.
export function initialValues(fields: DestinationField[], type: DestinationRequest["type"], d?: Destination): DestinationFormValues {
  const config: Record<string, string | boolean> = {};
  for (const f of fields) {
    const stored = d && d.type === type ? d.config[f.name] : undefined;
    const v = f.secret ? undefined : (stored ?? f.default);
    if (f.kind === "bool") config[f.name] = v === true;
    else config[f.name] = v === null || v === undefined ? "" : String(v);
  }
  return { name: d?.name ?? "", type, config };
}

// toRequest is the body of POST or PUT /destinations: empty fields are
// left out (the API applies the default; an omitted secret keeps the
// stored one), ports are numbers.
export function toRequest(v: DestinationFormValues, fields: DestinationField[]): DestinationRequest {
  const config: Record<string, unknown> = {};
  for (const f of fields) {
    const raw = v.config[f.name];
    if (f.kind === "bool") {
      config[f.name] = raw === true;
      continue;
    }
    if (typeof raw !== "string" || raw === "") continue;
    config[f.name] = f.kind === "port" || f.kind === "batch_size" ? Number(raw) : raw;
  }
  return { name: v.name, type: v.type, config };
}

export function secretSet(d: Destination | undefined, field: string): boolean {
  if (!d) return false;
  const key = `${field}_set` as "password_set" | "private_key_set" | "private_key_passphrase_set";
  return d[key] === true;
}
