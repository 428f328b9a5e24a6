// The before/after difference of an audit entry, field by field.

export type Change = { field: string; before: string; after: string };

// secretField names what must never be shown even if an entry carried it:
// the API already leaves secrets out (password_set, not the password).
const secretField = /(^|\.)(password|private_key|private_key_passphrase|secret|token)$/i;

function show(v: unknown): string {
  if (v === undefined) return "–";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

// flatten turns nested objects into dotted paths ("config.host"); arrays
// stay whole values.
function flatten(v: Record<string, unknown> | null, prefix = "", out: Map<string, unknown> = new Map()): Map<string, unknown> {
  for (const [k, val] of Object.entries(v ?? {})) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (val && typeof val === "object" && !Array.isArray(val)) flatten(val as Record<string, unknown>, path, out);
    else out.set(path, val);
  }
  return out;
}

// auditDiff lists the fields that differ between before and after, in
// field order; with no before (a create) every field of after, with no
// after (a delete) every field of before. updated_at is left out: it
// always changes.
export function auditDiff(before: Record<string, unknown> | null, after: Record<string, unknown> | null): Change[] {
  const b = flatten(before);
  const a = flatten(after);
  const fields = [...new Set([...b.keys(), ...a.keys()])].filter((f) => f !== "updated_at").sort();
  const out: Change[] = [];
  for (const f of fields) {
    const bv = show(b.get(f));
    const av = show(a.get(f));
    if (bv === av) continue;
    if (secretField.test(f)) out.push({ field: f, before: b.has(f) ? "(hidden)" : "–", after: a.has(f) ? "(hidden)" : "–" });
    else out.push({ field: f, before: bv, after: av });
  }
  return out;
}
