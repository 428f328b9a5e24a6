// The console's only way to the network: calls to the Rosetta API on the
// same origin, with the session's bearer token. Responses are parsed with
// the zod schemas of schemas.ts, so a shape the console does not expect is
// an error shown to the user, not a silent undefined.
import type { z } from "zod";
import { ErrorBody } from "./schemas";

export const apiBase = "/api/v1";

// ApiError is a non-2xx answer: the API's message and, for a request field
// at fault, its JSON path ("config.host", "tables").
export class ApiError extends Error {
  readonly status: number;
  readonly field?: string;
  constructor(status: number, message: string, field?: string) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

// Unauthorized is raised on a 401: the token expired or was revoked. The
// session listens for it and signs out with a message.
export const unauthorizedEvent = "rosetta:unauthorized";

export type TokenSource = () => string | null;

let tokenSource: TokenSource = () => null;

// setTokenSource tells the client where the session keeps its token.
export function setTokenSource(src: TokenSource) {
  tokenSource = src;
}

export function authHeaders(token = tokenSource()): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

type Options<T extends z.ZodType | undefined> = {
  method?: "GET" | "POST" | "PUT" | "DELETE";
  body?: unknown;
  schema?: T;
  query?: Record<string, string | number | undefined | null>;
  signal?: AbortSignal;
  token?: string;
};

export function buildUrl(path: string, query?: Options<undefined>["query"]): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const qs = params.toString();
  return `${apiBase}${path}${qs ? `?${qs}` : ""}`;
}

export async function api<T extends z.ZodType | undefined = undefined>(
  path: string,
  opts: Options<T> = {},
): Promise<T extends z.ZodType ? z.infer<T> : unknown> {
  const headers: Record<string, string> = { Accept: "application/json", ...authHeaders(opts.token ?? tokenSource()) };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(buildUrl(path, opts.query), {
    method: opts.method ?? "GET",
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: opts.signal,
  });
  if (!res.ok) throw await errorFrom(res);
  if (res.status === 204) return undefined as never;
  const json: unknown = await res.json();
  if (!opts.schema) return json as never;
  const parsed = opts.schema.safeParse(json);
  if (!parsed.success) {
    throw new ApiError(res.status, `unexpected response from ${path}: ${parsed.error.issues[0]?.path.join(".")} ${parsed.error.issues[0]?.message}`);
  }
  return parsed.data as never;
}

export async function errorFrom(res: Response): Promise<ApiError> {
  let msg = `${res.status} ${res.statusText}`;
  let field: string | undefined;
  try {
    const body = ErrorBody.safeParse(await res.json());
    if (body.success) {
      msg = body.data.error;
      field = body.data.field;
    }
  } catch {
    // not JSON: keep the status line
  }
  if (res.status === 401 && typeof window !== "undefined") {
    window.dispatchEvent(new CustomEvent(unauthorizedEvent, { detail: msg }));
  }
  return new ApiError(res.status, msg, field);
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
